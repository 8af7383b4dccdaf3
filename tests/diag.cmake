# diag.cmake — golden diagnostic tests: one ctest test per tests/diag/*.attn,
# named diag/<basename>, comparing `attnc check` with the sibling .expect.
# Re-bless after an intended change of the messages with
#   tests/golden.sh build/attnc --bless-all tests/diag     (then review the diff)
file(GLOB ATTNC_DIAG_SPECS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/diag/*.attn)
list(SORT ATTNC_DIAG_SPECS)
foreach(spec IN LISTS ATTNC_DIAG_SPECS)
  get_filename_component(name ${spec} NAME_WE)
  add_test(NAME diag/${name}
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/golden.sh $<TARGET_FILE:attnc> ${spec})
  set_tests_properties(diag/${name} PROPERTIES LABELS diag TIMEOUT 30)
endforeach()
