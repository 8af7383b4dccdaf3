# tests/nomem.cmake — allocation failures (tests/test_nomem.c): the test links
# the static library with malloc, calloc, realloc, strdup and strndup wrapped,
# so it can fail attnc's Nth allocation; libtcc's entry points are wrapped too,
# to leave libtcc's own allocations alone (it does not survive a failed one).
add_executable(test_nomem ${PROJECT_SOURCE_DIR}/tests/test_nomem.c)
target_compile_options(test_nomem PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_nomem PRIVATE attnc_static m)
target_include_directories(test_nomem PRIVATE ${PROJECT_SOURCE_DIR}/runtime) # launch_stats.h: the grid case's path
set(ATTNC_NOMEM_WRAP malloc calloc realloc strdup strndup)
if(ATTNC_HAVE_TCC_JIT)
  target_compile_definitions(test_nomem PRIVATE NOMEM_WRAP_TCC)
  target_include_directories(test_nomem PRIVATE ${ATTNC_TCC_INCLUDE_DIR})
  list(APPEND ATTNC_NOMEM_WRAP tcc_new tcc_delete tcc_set_error_func tcc_set_options tcc_set_output_type
       tcc_define_symbol tcc_compile_string tcc_add_symbol tcc_relocate tcc_get_symbol)
endif()
foreach(fn ${ATTNC_NOMEM_WRAP})
  target_link_options(test_nomem PRIVATE "LINKER:--wrap=${fn}")
endforeach()
# The sanitizer build's run is the one that matters (a leak or a bad free on a failure path shows only there); this
# build's run of the same paths took ~50 s of CI's CPU: only under the sanitizers (test_nomem is built in both).
if(ATTNC_SANITIZE)
  add_test(NAME nomem/each-allocation-fails COMMAND test_nomem)
endif()
