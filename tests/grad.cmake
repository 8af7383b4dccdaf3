# tests/grad.cmake — gradients (issue 12): the interpreter's reference backward
# against finite differences of its own forward (tests/test_grad_interp.c), on
# every attention of every example and on specs covering each derivative rule.
add_executable(test_grad_interp ${PROJECT_SOURCE_DIR}/tests/test_grad_interp.c)
target_compile_options(test_grad_interp PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_grad_interp PRIVATE attnc_test_support)
# Under the sanitizers (about 10 times slower) fewer elements per gradient: the release build checks the numbers,
# this build the memory.
set(ATTNC_GRAD_SAMPLES 12)
if(ATTNC_SANITIZE)
  set(ATTNC_GRAD_SAMPLES 2) # the float64 forward under ASan is slow: each sample is four of them per element
endif()
add_test(NAME grad/interp-fd/rules COMMAND test_grad_interp --rules --samples ${ATTNC_GRAD_SAMPLES})
# every example; under the sanitizers a representative set (tests.cmake), with the rules above covering each
# derivative rule
foreach(example ${ATTNC_CHECKED_EXAMPLES})
  get_filename_component(name ${example} NAME_WE)
  # the example's Lq and Lk (its params fit them), fewer heads (GQA 2:1) and a small D
  add_test(NAME grad/interp-fd/${name} COMMAND test_grad_interp ${example} --shape B=2,H=2,Hkv=1,D=4,Dv=3
                                                --samples ${ATTNC_GRAD_SAMPLES})
endforeach()
# version 2 (rows, rotary, sinks): D = 8 fits every example's rotary dims and dot rows
file(GLOB ATTNC_GRAD_EXAMPLES_V2 CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/v2/*.attn)
foreach(example ${ATTNC_GRAD_EXAMPLES_V2})
  get_filename_component(name ${example} NAME_WE)
  add_test(NAME grad/interp-fd/v2/${name} COMMAND test_grad_interp ${example} --shape B=2,H=2,Hkv=1,D=8,Dv=3
                                                   --samples ${ATTNC_GRAD_SAMPLES})
endforeach()
# attnc_kernel_backward's plumbing on the interpreter: one gradient at a time, f16/bf16, [B, L, H, D], hostile calls,
# a runtime error reported as the forward's.
add_executable(test_grad_api ${PROJECT_SOURCE_DIR}/tests/test_grad_api.c)
target_compile_options(test_grad_api PRIVATE ${ATTNC_WARNINGS})
target_include_directories(test_grad_api PRIVATE ${PROJECT_SOURCE_DIR}/base)
target_link_libraries(test_grad_api PRIVATE attnc_test_support)
add_test(NAME grad/interp-api COMMAND test_grad_api ${PROJECT_SOURCE_DIR}/examples)
# version 2's plumbing (api/api_grad_v2.c) on every backend with a backward: a sink's runtime error leaves every
# output untouched, a rotary position failing only for masked keys, gradients asked for one at a time.
add_executable(test_grad_v2 ${PROJECT_SOURCE_DIR}/tests/test_grad_v2.c)
target_compile_options(test_grad_v2 PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_grad_v2 PRIVATE attnc_test_support)
add_test(NAME grad/v2-api COMMAND test_grad_v2)
