# tests/fuzz.cmake — the libFuzzer targets (clang only), each run by ctest for
# a fixed number of inputs from a small committed seed corpus, so CI time
# stays bounded and the run is repeatable:
#   fuzz_spec  parse + check + run of .attn text (seeds: examples, golden diagnostics)
#   fuzz_npy   the .npy reader from memory and from a file, and the writer's round trip
#   fuzz_cli   the command-line parser (cli/options.c), argv built from the bytes
# A long run: build-fuzz/fuzz_npy -max_total_time=600 CORPUS_DIR tests/fuzz/corpus-npy
if(ATTNC_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ATTNC_FUZZ needs clang (CC=clang)")
  endif()
  function(attnc_fuzz_target name)
    add_executable(${name} ${ARGN})
    target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer ${ATTNC_WARNINGS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE attnc_static)
  endfunction()
  attnc_fuzz_target(fuzz_spec ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_spec.c)
  attnc_fuzz_target(fuzz_npy ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_npy.c)
  target_link_libraries(fuzz_npy PRIVATE attnc_npy)
  attnc_fuzz_target(fuzz_cli ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_cli.c ${PROJECT_SOURCE_DIR}/cli/options.c)
  target_include_directories(fuzz_cli PRIVATE ${PROJECT_SOURCE_DIR}/cli)

  set(ATTNC_FUZZ_RUNS 20000 CACHE STRING "inputs the spec fuzz test tries")
  # the npy and cli targets are fast: these counts take ~20-40 s each in the ASan build
  set(ATTNC_FUZZ_NPY_RUNS 400000 CACHE STRING "inputs the npy fuzz test tries")
  set(ATTNC_FUZZ_CLI_RUNS 1200000 CACHE STRING "inputs the cli fuzz test tries")
  add_test(NAME fuzz/spec
           COMMAND sh -c "mkdir -p fuzz-corpus && exec \"$0\" -runs=${ATTNC_FUZZ_RUNS} -seed=1 -max_len=2048 -timeout=20 -rss_limit_mb=4096 fuzz-corpus ${PROJECT_SOURCE_DIR}/examples ${PROJECT_SOURCE_DIR}/tests/diag"
                   $<TARGET_FILE:fuzz_spec>
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  add_test(NAME fuzz/npy
           COMMAND sh -c "rm -rf fuzz-corpus-npy && mkdir fuzz-corpus-npy && exec \"$0\" -runs=${ATTNC_FUZZ_NPY_RUNS} -seed=1 -max_len=1024 -timeout=20 -rss_limit_mb=4096 fuzz-corpus-npy ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus-npy"
                   $<TARGET_FILE:fuzz_npy>
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  add_test(NAME fuzz/cli
           COMMAND sh -c "rm -rf fuzz-corpus-cli && mkdir fuzz-corpus-cli && exec \"$0\" -runs=${ATTNC_FUZZ_CLI_RUNS} -seed=1 -max_len=512 -timeout=20 -rss_limit_mb=4096 fuzz-corpus-cli ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus-cli"
                   $<TARGET_FILE:fuzz_cli>
           WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
endif()
