# tests/difffuzz.cmake — attnc-fuzz, the differential fuzzer (tests/fuzz/difffuzz.c):
# random well-typed specs through every backend of this build against the
# interpreter.  ctest runs a fixed seed range (the same specs every time),
# fewer under the sanitizers; README gives the command for a long run.
add_executable(attnc-fuzz ${PROJECT_SOURCE_DIR}/tests/fuzz/difffuzz.c ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzzcase.c
                          ${PROJECT_SOURCE_DIR}/tests/fuzz/fclayout.c ${PROJECT_SOURCE_DIR}/tests/fuzz/fcbatch.c
                          ${PROJECT_SOURCE_DIR}/tests/fuzz/specgen.c
                          ${PROJECT_SOURCE_DIR}/tests/fuzz/specgen_render.c)
# half.h; cuda_emu_backend.h and launch_stats.h (how many runs went through cuda-emu's tensor-core kernel and
# the block-order plan, for the summary; 16 KiB kv chunks)
target_include_directories(attnc-fuzz PRIVATE ${PROJECT_SOURCE_DIR}/base ${PROJECT_SOURCE_DIR}/backends/cuda
                                              ${PROJECT_SOURCE_DIR}/runtime)
target_compile_options(attnc-fuzz PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(attnc-fuzz PRIVATE attnc_static m)
if(ATTNC_SANITIZE)
  set(ATTNC_DIFFFUZZ_COUNT 25 CACHE STRING "specs the difffuzz test draws")
else()
  # 55: ~95 s of CI's CPU (75 took ~130 s, 100 ~170 s; CI's 30 minutes); README gives the command for long runs
  set(ATTNC_DIFFFUZZ_COUNT 55 CACHE STRING "specs the difffuzz test draws")
endif()
# The most threads a backend call gets (each run draws 1..N).  With 3, this test crashed before the thread pool
# fix (runtime/threads.c: a call on 2 threads after one on 3 ran on 3, the third writing past the scratch that
# launch_run sized for 2); runtime/threads tests the pool directly.
set(ATTNC_DIFFFUZZ_MAX_THREADS 3 CACHE STRING "most threads per backend call in the difffuzz test")
add_test(NAME fuzz/differential
         COMMAND attnc-fuzz --seed 1000 --count ${ATTNC_DIFFFUZZ_COUNT} --max-threads ${ATTNC_DIFFFUZZ_MAX_THREADS}
                 --out ${CMAKE_BINARY_DIR}/difffuzz-findings)
# It must also reach the paths the summary counts (seeds 1000..1024: 11 runs on cuda-emu's tensor-core kernel, 4 on
# multi-dimensional tiles, 27 on a kept masked tile map): a generator change that loses one fails here rather than
# leaving that path unfuzzed.
set(ATTNC_FUZZ_UNREACHED "[^0-9]0 cuda-emu runs on the tensor-core kernel" "[^0-9]0 runs on multi-dimensional tiles"
                         "[^0-9]0 on a kept masked tile map")
set_tests_properties(fuzz/differential PROPERTIES TIMEOUT 900 FAIL_REGULAR_EXPRESSION "${ATTNC_FUZZ_UNREACHED}")
# Every fixed finding in tests/fuzz/findings replays clean on every backend: fixed bugs stay fixed.
# open-* directories are bugs not fixed yet (README there); drop the prefix with the fix.
file(GLOB ATTNC_FUZZ_FINDINGS LIST_DIRECTORIES true ${PROJECT_SOURCE_DIR}/tests/fuzz/findings/*)
foreach(dir ${ATTNC_FUZZ_FINDINGS})
  get_filename_component(name ${dir} NAME)
  if(IS_DIRECTORY ${dir} AND NOT name MATCHES "^open-")
    get_filename_component(name ${dir} NAME)
    add_test(NAME fuzz/findings/${name} COMMAND attnc-fuzz --replay ${dir} --backends llvm,tcc,refplan,cuda-emu)
  endif()
endforeach()
