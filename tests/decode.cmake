# tests/decode.cmake — every examples/*.attn in decode shapes (Lq 1..16, GQA
# ratios 1, 4, 8; heads packed, keys split across threads, neither) on every
# backend against the interpreter (tests/test_decode.c).
add_executable(test_decode ${PROJECT_SOURCE_DIR}/tests/test_decode.c)
target_compile_options(test_decode PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_decode PRIVATE attnc_test_support)

set(ATTNC_DECODE_BACKENDS refplan)
if(ATTNC_HAVE_TCC_JIT)
  list(APPEND ATTNC_DECODE_BACKENDS tcc cuda-emu)
endif()
if(ATTNC_HAVE_LLVM_BACKEND)
  list(APPEND ATTNC_DECODE_BACKENDS llvm)
endif()
foreach(example ${ATTNC_CHECKED_EXAMPLES}) # every example; a representative set under the sanitizers (tests.cmake)
  get_filename_component(name ${example} NAME_WE)
  foreach(backend ${ATTNC_DECODE_BACKENDS})
    add_test(NAME decode/${name}/${backend} COMMAND test_decode ${example} --backend ${backend})
    set_tests_properties(decode/${name}/${backend} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
endforeach()
