# tests/cuda_simt.cmake — the strict SIMT emulation of cuda-emu (backends/cuda/emu_simt.c) on the device
# programs of tests/cuda_simt/, written with templates/cuda_mma.h and compiled by libtcc (tests/test_cuda_simt.c);
# and the same programs through nvcc for sm_80 and sm_90: the PTX must hold the tensor-core, cp.async, ldmatrix
# and shuffle instructions, the SASS HMMA (tests/cuda_simt_nvcc.sh; skipped, exit 77, without nvcc).
if(ATTNC_HAVE_TCC_JIT)
  add_executable(test_cuda_simt ${PROJECT_SOURCE_DIR}/tests/test_cuda_simt.c)
  target_compile_options(test_cuda_simt PRIVATE ${ATTNC_WARNINGS})
  target_include_directories(test_cuda_simt PRIVATE ${PROJECT_SOURCE_DIR}/base ${PROJECT_SOURCE_DIR}/templates
                             ${ATTNC_TCC_INCLUDE_DIR})
  target_link_libraries(test_cuda_simt PRIVATE attnc_test_support ${ATTNC_TCC_LIBRARY} ${CMAKE_DL_LIBS} Threads::Threads)
  foreach(case mma tf32 shfl cpasync faults flash)
    add_test(NAME cuda-emu/simt/${case} COMMAND test_cuda_simt ${PROJECT_SOURCE_DIR}/tests/cuda_simt ${case})
  endforeach()
  set(throughput throughput)
  if(ATTNC_SANITIZE) # its fiber switches are ~50 times slower there (100 rounds: ~70 s)
    set(throughput throughput-quick)
  endif()
  add_test(NAME cuda-emu/simt/throughput COMMAND test_cuda_simt ${PROJECT_SOURCE_DIR}/tests/cuda_simt ${throughput})
  if(NOT ATTNC_SANITIZE) # nvcc's and ptxas's work: nothing for the sanitizers to see
    add_test(NAME cuda-emu/simt/nvcc COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_simt_nvcc.sh
             $<TARGET_FILE:test_cuda_simt> ${PROJECT_SOURCE_DIR}/tests/cuda_simt ${CMAKE_CURRENT_BINARY_DIR}/cuda_simt)
    set_tests_properties(cuda-emu/simt/nvcc PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endif()
