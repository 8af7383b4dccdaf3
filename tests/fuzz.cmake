# tests/fuzz.cmake — the libFuzzer target (clang only), run by ctest for a
# fixed number of inputs from a seed corpus of the examples and the golden
# diagnostics, so CI time stays bounded and the run is repeatable.
if(ATTNC_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ATTNC_FUZZ needs clang (CC=clang)")
  endif()
  add_executable(fuzz_spec ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_spec.c)
  target_compile_definitions(fuzz_spec PRIVATE _GNU_SOURCE)
  target_compile_options(fuzz_spec PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_spec PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz_spec PRIVATE attnc_static)
  set(ATTNC_FUZZ_RUNS 20000 CACHE STRING "inputs the fuzz test tries")
  add_test(NAME fuzz/spec
           COMMAND sh -c "mkdir -p fuzz-corpus && exec \"$0\" -runs=${ATTNC_FUZZ_RUNS} -seed=1 -max_len=2048 -timeout=20 -rss_limit_mb=4096 fuzz-corpus ${PROJECT_SOURCE_DIR}/examples ${PROJECT_SOURCE_DIR}/tests/diag"
                   $<TARGET_FILE:fuzz_spec>
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
endif()
