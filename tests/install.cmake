# tests/install.cmake — `cmake --install` into a temporary prefix and link
# examples/embed and tests/install_v2.c against it with pkg-config and find_package (tests/install.sh).
set(install_test_cflags "")
if(ATTNC_SANITIZE)
  string(APPEND install_test_cflags " -fsanitize=address,undefined")
endif()
if(ATTNC_FUZZ)
  string(APPEND install_test_cflags " -fsanitize=fuzzer-no-link")
endif()
add_test(NAME install/link COMMAND bash ${PROJECT_SOURCE_DIR}/tests/install.sh ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(install/link PROPERTIES ENVIRONMENT "CC=${CMAKE_C_COMPILER};EXTRA_CFLAGS=${install_test_cflags}")
