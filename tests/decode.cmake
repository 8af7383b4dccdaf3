# tests/decode.cmake — every examples/*.attn in decode shapes (Lq 1..16, GQA
# ratios 1, 4, 8; heads packed, keys split across threads, neither) on every
# backend against the interpreter (tests/test_decode.c).
add_executable(test_decode ${PROJECT_SOURCE_DIR}/tests/test_decode.c)
target_compile_options(test_decode PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_decode PRIVATE attnc_test_support)
target_include_directories(test_decode PRIVATE ${PROJECT_SOURCE_DIR}/runtime) # launch_stats.h: --long's chunks

foreach(example ${ATTNC_CHECKED_EXAMPLES}) # every example; a representative set under the sanitizers (tests.cmake)
  get_filename_component(name ${example} NAME_WE)
  foreach(backend ${ATTNC_LAUNCH_BACKENDS})
    add_test(NAME decode/${name}/${backend} COMMAND test_decode ${example} --backend ${backend})
    set_tests_properties(decode/${name}/${backend} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
endforeach()
# K and V as [B, Lk, Hkv, D] views and vLLM's pages with 700 keys: rows of
# all kv heads interleave, so the keys are cut into chunks run one after
# another (runtime/launch.c: kv_chunks); the representative examples
# (cuda-emu, whose emulated kernel is slow at this size, on two of them,
# llvm, whose compile is, on three: chunks are the runtime's, not a kernel's;
# under the sanitizers, which check the runtime's chunks and merges, causal)
foreach(example ${ATTNC_REPRESENTATIVE_EXAMPLES})
  get_filename_component(name ${example} NAME_WE)
  if(ATTNC_SANITIZE AND NOT name STREQUAL "causal")
    continue()
  endif()
  foreach(backend ${ATTNC_LAUNCH_BACKENDS})
    if(backend STREQUAL "cuda-emu" AND NOT name MATCHES "^(causal|document)$")
      continue()
    endif()
    if(backend STREQUAL "llvm" AND NOT name MATCHES "^(causal|document|softcap)$")
      continue()
    endif()
    add_test(NAME decode/interleaved/${name}/${backend} COMMAND test_decode ${example} --backend ${backend} --long)
    set_tests_properties(decode/interleaved/${name}/${backend} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
endforeach()
