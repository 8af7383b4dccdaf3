# tests/interp.cmake — the reference interpreter against a naive attention written
# in the test (tests/test_interp_naive.c), through the public API only.
# Included from tests/tests.cmake, after the attnc_static target exists.

add_executable(test_interp_naive ${PROJECT_SOURCE_DIR}/tests/test_interp_naive.c)
target_compile_options(test_interp_naive PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_interp_naive PRIVATE attnc_static m)

add_test(NAME interp_vs_naive COMMAND test_interp_naive)
