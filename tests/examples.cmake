# tests/examples.cmake — every examples/*.attn through the interpreter on the
# random inputs its `// example-args:` line describes (tests/test_examples.c).
add_library(attnc_test_support STATIC ${PROJECT_SOURCE_DIR}/tests/support.c)
target_compile_options(attnc_test_support PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(attnc_test_support PUBLIC attnc_internal m)
target_include_directories(attnc_test_support PUBLIC ${PROJECT_SOURCE_DIR}/tests)
add_executable(test_examples ${PROJECT_SOURCE_DIR}/tests/test_examples.c)
target_compile_options(test_examples PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_examples PRIVATE attnc_test_support)

file(GLOB ATTNC_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.attn)
foreach(example ${ATTNC_EXAMPLES})
  get_filename_component(name ${example} NAME_WE)
  add_test(NAME example/${name}/interp COMMAND test_examples ${example} --backend interp)
  add_test(NAME example/${name}/refplan COMMAND test_examples ${example} --backend refplan --threads 2)
  if(ATTNC_HAVE_TCC_JIT)
    add_test(NAME example/${name}/tcc COMMAND test_examples ${example} --backend tcc --threads 2)
    add_test(NAME example/${name}/tcc-separable COMMAND test_examples ${example} --backend tcc --flags 1)
    add_test(NAME example/${name}/cuda-emu COMMAND test_examples ${example} --backend cuda-emu --threads 2)
  endif()
  if(ATTNC_HAVE_LLVM_BACKEND)
    add_test(NAME example/${name}/llvm COMMAND test_examples ${example} --backend llvm --threads 2)
    # the rewrite is the middle end's (refplan-separable and tcc-separable run it on every example): in the
    # sanitizer build the representative set (tests.cmake) for the JIT code
    if(example IN_LIST ATTNC_CHECKED_EXAMPLES)
      add_test(NAME example/${name}/llvm-separable COMMAND test_examples ${example} --backend llvm --flags 1)
      if(name STREQUAL "alibi") # the rewrite changes alibi_causal's plan: its kernel must run, not be skipped
        set_tests_properties(example/${name}/llvm-separable PROPERTIES FAIL_REGULAR_EXPRESSION "alibi_causal \\(flags")
      endif()
    endif()
  endif()
  # the opt-in separable-bias rewrite must preserve results too (flag 1 = ATTNC_OPT_SEPARABLE_BIAS)
  add_test(NAME example/${name}/refplan-separable COMMAND test_examples ${example} --backend refplan --flags 1)
  # decode shapes (issue 11): GQA ratio 4 with Lq < bq, where the runtime packs
  # the 4 query heads of a kv head into one work item, so the C and CUDA
  # templates' packed rows (one head per row) run every example; D and Dv not
  # powers of two.  Lk 77 or 168 are multiples of the 7 columns of
  # relative_bias_2d's grid; box_bias's grid has 8 columns: 88 for 77.
  if(ATTNC_HAVE_TCC_JIT)
    foreach(decode Lq=1,Lk=77 Lq=2,Lk=168 Lq=7,Lk=77 Lq=16,Lk=168)
      if(name STREQUAL "box_bias")
        string(REPLACE "Lk=77" "Lk=88" decode ${decode})
      endif()
      string(REGEX REPLACE "^Lq=([0-9]+).*" "\\1" lq ${decode})
      foreach(backend tcc cuda-emu)
        add_test(NAME example/${name}/decode/Lq${lq}/${backend} COMMAND test_examples ${example} --backend ${backend}
                 --threads 2 --shape H=8,Hkv=2,D=24,Dv=40,${decode})
      endforeach()
    endforeach()
  endif()
endforeach()

# Version 2 examples (spec 9; issue 14) live in examples/v2/ until
# ahead-of-time C and the gradients take them: on the interpreter (the naive
# checks are tests/test_lang_v2.c) and on every compiled backend
# against it (rotary and sinks applied around the kernel, dot products of
# rows as per-call tables).
file(GLOB ATTNC_V2_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/v2/*.attn)
foreach(example ${ATTNC_V2_EXAMPLES})
  get_filename_component(name ${example} NAME_WE)
  add_test(NAME example/v2/${name}/interp COMMAND test_examples ${example} --backend interp)
  foreach(backend ${ATTNC_LAUNCH_BACKENDS})
    add_test(NAME example/v2/${name}/${backend} COMMAND test_examples ${example} --backend ${backend} --threads 2)
  endforeach()
endforeach()
