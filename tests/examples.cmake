# tests/examples.cmake — every examples/*.attn through the interpreter on the
# random inputs its `// example-args:` line describes (tests/test_examples.c).
add_library(attnc_test_support STATIC ${PROJECT_SOURCE_DIR}/tests/support.c)
target_compile_options(attnc_test_support PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(attnc_test_support PUBLIC attnc_static m)
target_include_directories(attnc_test_support PUBLIC ${PROJECT_SOURCE_DIR}/tests)
add_executable(test_examples ${PROJECT_SOURCE_DIR}/tests/test_examples.c)
target_compile_options(test_examples PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_examples PRIVATE attnc_test_support)

file(GLOB ATTNC_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.attn)
foreach(example ${ATTNC_EXAMPLES})
  get_filename_component(name ${example} NAME_WE)
  add_test(NAME example/${name}/interp COMMAND test_examples ${example} --backend interp)
  add_test(NAME example/${name}/refplan COMMAND test_examples ${example} --backend refplan --threads 2)
  # the opt-in separable-bias rewrite must preserve results too (flag 1 = ATTNC_OPT_SEPARABLE_BIAS)
  add_test(NAME example/${name}/refplan-separable COMMAND test_examples ${example} --backend refplan --flags 1)
endforeach()
