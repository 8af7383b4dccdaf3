# npyrand_check.cmake — checks of the npyrand command line, run by ctest as
#   cmake -DNPYRAND=path -DTEST_NPY=path -DWORK_DIR=dir -P npyrand_check.cmake
# Stops with FATAL_ERROR at the first check that fails.

foreach(var NPYRAND TEST_NPY WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "npyrand_check.cmake needs -D${var}=...")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Runs the command in ARGN and fails unless it exits with expected_rc.
function(expect_exit expected_rc)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT "${rc}" STREQUAL "${expected_rc}")
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "expected exit ${expected_rc}, got ${rc}: ${command}\n${out}${err}")
  endif()
endfunction()

function(expect_same_files a b same)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${a}" "${b}" RESULT_VARIABLE rc)
  if(same AND NOT rc EQUAL 0)
    message(FATAL_ERROR "${a} and ${b} differ but should be identical")
  elseif(NOT same AND rc EQUAL 0)
    message(FATAL_ERROR "${a} and ${b} are identical but should differ")
  endif()
endfunction()

function(expect_sha256 file expected)
  file(SHA256 "${file}" actual)
  if(NOT actual STREQUAL expected)
    message(FATAL_ERROR "${file} has SHA-256 ${actual}, expected ${expected}: npyrand's output changed")
  endif()
endfunction()

set(d "${WORK_DIR}")

# Same seed, same file; another seed, another file.
expect_exit(0 "${NPYRAND}" "${d}/a.npy" f4 2,3,4 --seed 7)
expect_exit(0 "${NPYRAND}" --seed=7 "${d}/b.npy" f4 2,3,4)
expect_exit(0 "${NPYRAND}" "${d}/c.npy" f4 2,3,4 --seed 8)
expect_same_files("${d}/a.npy" "${d}/b.npy" TRUE)
expect_same_files("${d}/a.npy" "${d}/c.npy" FALSE)

# Scripts may rely on exact contents for a seed, so pin them (default and explicit ranges).
expect_exit(0 "${NPYRAND}" "${d}/pin_f4.npy" f4 3,5,7 --seed 42)
expect_exit(0 "${NPYRAND}" "${d}/pin_i4.npy" i4 4,9 --seed 42 --range -100,100)
expect_sha256("${d}/pin_f4.npy" da3e2e8ddb4fe638a8c9e97f54c86d3be813425d807bc572783f3f60580dade0)
expect_sha256("${d}/pin_i4.npy" 5f44b86d49b92215c180de608a21cb4f472f134cdf43db27b3f2b8de75bb52c9)

# What npyrand writes, npy_read accepts with the right dtype, shape and value range.
expect_exit(0 "${TEST_NPY}" --expect "${d}/a.npy" f4 2,3,4 -1 1)
expect_exit(1 "${TEST_NPY}" --expect "${d}/a.npy" i4 2,3,4)
expect_exit(1 "${TEST_NPY}" --expect "${d}/a.npy" f4 2,3)
expect_exit(0 "${NPYRAND}" "${d}/i.npy" i4 1000 --range -3,3 --seed 1)
expect_exit(0 "${TEST_NPY}" --expect "${d}/i.npy" i4 1000 -3 3)
expect_exit(0 "${NPYRAND}" "${d}/r.npy" f4 64 --range 10,10.5)
expect_exit(0 "${TEST_NPY}" --expect "${d}/r.npy" f4 64 10 10.5)
expect_exit(0 "${NPYRAND}" "${d}/s.npy" i4 scalar)
expect_exit(0 "${TEST_NPY}" --expect "${d}/s.npy" i4 scalar 0 4)
expect_exit(0 "${NPYRAND}" "${d}/z.npy" f4 0,3)
expect_exit(0 "${TEST_NPY}" --expect "${d}/z.npy" f4 0,3)

# Bad arguments exit 2 and write nothing; a failed write exits 1.
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" f4 2,x)
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" f4 -2)
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" f4 1,1,1,1,1,1,1,1,1)
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" f8 2)
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" f4)
expect_exit(2 "${NPYRAND}")
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" f4 2 --seed)
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" f4 2 --range 1,1)
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" i4 2 --range 0.5,3)
expect_exit(2 "${NPYRAND}" "${d}/bad.npy" f4 2 --frobnicate)
if(EXISTS "${d}/bad.npy")
  message(FATAL_ERROR "npyrand wrote ${d}/bad.npy despite bad arguments")
endif()
expect_exit(1 "${NPYRAND}" "${d}/no/such/dir/x.npy" f4 2)

file(REMOVE_RECURSE "${WORK_DIR}")
