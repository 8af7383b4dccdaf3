# tests/llvm.cmake — the LLVM backend against the interpreter (tests/test_llvm.c):
# random shapes, error paths, emitted text, threads, compile/run/free cycles.
# The per-example LLVM runs are in tests/examples.cmake.
if(ATTNC_HAVE_LLVM_BACKEND)
  add_executable(test_llvm ${PROJECT_SOURCE_DIR}/tests/test_llvm.c)
  target_compile_options(test_llvm PRIVATE ${ATTNC_WARNINGS})
  target_link_libraries(test_llvm PRIVATE attnc_test_support Threads::Threads)
  add_test(NAME llvm/differential COMMAND test_llvm)
  set_tests_properties(llvm/differential PROPERTIES SKIP_RETURN_CODE 77)
endif()
