# tests/npy.cmake — tests of the .npy reader/writer (cli/npy.c) and the npyrand tool.
# Included from the root CMakeLists.txt after the attnc_npy target (cli/npy.c and
# cli/outfile.c, not part of libattnc), which exports include/ and cli/.

add_executable(npyrand ${PROJECT_SOURCE_DIR}/tests/tools/npyrand.c)
target_link_libraries(npyrand PRIVATE attnc_npy)

add_executable(test_npy ${PROJECT_SOURCE_DIR}/tests/test_npy.c)
target_link_libraries(test_npy PRIVATE attnc_npy)

add_test(NAME npy_unit COMMAND test_npy)

# The CLI contract: determinism, readable output, exit 2 on bad arguments, no file left behind.
add_test(NAME npyrand_cli
         COMMAND ${CMAKE_COMMAND}
                 -DNPYRAND=$<TARGET_FILE:npyrand>
                 -DTEST_NPY=$<TARGET_FILE:test_npy>
                 -DWORK_DIR=${CMAKE_BINARY_DIR}/npyrand_cli
                 -P ${PROJECT_SOURCE_DIR}/tests/npyrand_check.cmake)

# Output files (cli/outfile.c): links, devices, groups written whole or not at all.
add_executable(test_outfile ${PROJECT_SOURCE_DIR}/tests/test_outfile.c)
target_compile_options(test_outfile PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_outfile PRIVATE attnc_npy)
add_test(NAME npy_outfile COMMAND test_outfile)
