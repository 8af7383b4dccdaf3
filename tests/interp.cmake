# tests/interp.cmake — the reference interpreter against a naive attention written
# in the test (tests/test_interp_naive.c), through the public API only.
# Included from tests/tests.cmake, after the attnc_static target exists.

add_executable(test_interp_naive ${PROJECT_SOURCE_DIR}/tests/test_interp_naive.c)
target_compile_options(test_interp_naive PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_interp_naive PRIVATE attnc_static m)

add_test(NAME interp_vs_naive COMMAND test_interp_naive)

# Version 2 (spec 9: rows and dot, rotary, sink, sin/cos) on the interpreter
# against explicit rotation matrices, dot products and softmax terms.
add_executable(test_lang_v2 ${PROJECT_SOURCE_DIR}/tests/test_lang_v2.c)
target_compile_options(test_lang_v2 PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_lang_v2 PRIVATE attnc_test_support)
add_test(NAME lang-v2/vs-naive COMMAND test_lang_v2)
# the tables of Q rows made per work item (llvm, tcc) against the interpreter
add_executable(test_rows_items ${PROJECT_SOURCE_DIR}/tests/test_rows_items.c)
target_compile_options(test_rows_items PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_rows_items PRIVATE attnc_test_support)
add_test(NAME lang-v2/rows-per-item COMMAND test_rows_items)

# The edges of one call on every backend (zero sizes, param values, work
# limits, long chains), with the default 8 MiB stack: sema.c's depth limit
# promises that every walker fits in it (the pool's threads get the same).
add_executable(test_call_edges ${PROJECT_SOURCE_DIR}/tests/test_call_edges.c)
target_compile_options(test_call_edges PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_call_edges PRIVATE attnc_test_support)
add_test(NAME call/edges COMMAND sh -c "ulimit -s 8192 && exec \"$0\"" $<TARGET_FILE:test_call_edges>)
# a call that never ends is this test's failure too: a bound on the wait, not a timing check
set_tests_properties(call/edges PROPERTIES TIMEOUT 600)
add_test(NAME call/edges-cli COMMAND bash ${PROJECT_SOURCE_DIR}/tests/call_edges.sh $<TARGET_FILE:attnc> $<TARGET_FILE:npyrand>)
