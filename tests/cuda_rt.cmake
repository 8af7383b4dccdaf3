# tests/cuda_rt.cmake — the `cuda` backend (backends/cuda/cuda_backend.c, docs/cuda.md "The cuda backend").
# Without a GPU: nine examples' kernels (ATTNC_NVRTC_EXAMPLES) through the library's NVRTC compile (sm_90 at
# D = 128 for most; two files for sm_80 and sm_90 at D = 64 and 128) (PTX with
# mma.sync; ptxas -v: no spills, shared memory within the limit; HMMA in the SASS), one case per example file
# (tests/test_cuda_nvrtc.c; skipped, exit 77, without NVRTC or ptxas); NVRTC refusing a text, NVRTC missing,
# the driver missing (forced with ATTNC_NVRTC_LIBRARY / ATTNC_CUDA_DRIVER, so they pass on GPU machines too);
# the CLI without a driver (tests/cuda_rt_cli.sh).  On a GPU (skipped, exit 77, without one): every example
# through `attnc diff --backends cuda` and the device-pointer API (tests/cuda_rt_gpu.sh, test_cuda_device.c).
add_executable(test_cuda_nvrtc ${PROJECT_SOURCE_DIR}/tests/test_cuda_nvrtc.c)
target_compile_options(test_cuda_nvrtc PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_cuda_nvrtc PRIVATE attnc_test_support)
file(GLOB ATTNC_RT_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.attn)
# version 2 (spec 9): the scaffold's text with its kernels around the attention kernel, for sm_80 and sm_90
file(GLOB ATTNC_RT_EXAMPLES_V2 CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/v2/*.attn)
# the representative examples (tests.cmake: one of each kind of element code) and retention (the most registers at
# D = 64); every example's CUDA text runs on cuda-emu (tests/examples.cmake) and, on a GPU, through NVRTC
# (cuda/gpu-rt/*); NVRTC on all of them here took ~170 s more of CI's CPU
set(ATTNC_NVRTC_EXAMPLES ${ATTNC_REPRESENTATIVE_EXAMPLES} ${PROJECT_SOURCE_DIR}/examples/retention.attn)
# low_rank_bias: its scaffold and its tensor-core text go through nvcc (cuda/nvcc/low_rank_bias, cuda-emu/fa2/nvcc)
list(REMOVE_ITEM ATTNC_NVRTC_EXAMPLES ${PROJECT_SOURCE_DIR}/examples/low_rank_bias.attn)
if(ATTNC_SANITIZE)
  # what the sanitizers see (the library's NVRTC calls, the text it hands over, ptxas's report) is the same for
  # every example; the compiles themselves are NVRTC's and ptxas's: one example keeps the CI under its budget (all
  # of them: ~280 s of CPU in the sanitizer build)
  set(ATTNC_NVRTC_EXAMPLES ${PROJECT_SOURCE_DIR}/examples/causal.attn)
endif()
# the whole matrix (sm_80 and sm_90, D = 64 and 128) for causal; the other examples' tensor-core kernels for sm_90
# at D = 128 only (--one-arch: the same text, the most registers and shared memory; half the ~400 s of CPU;
# retention's whole matrix took ~8 s more); the sanitizer build runs its file --one-arch
set(ATTNC_NVRTC_WHOLE causal)
foreach(example ${ATTNC_NVRTC_EXAMPLES})
  get_filename_component(name ${example} NAME_WE)
  set(mode --one-arch)
  if(name IN_LIST ATTNC_NVRTC_WHOLE AND NOT ATTNC_SANITIZE)
    set(mode "")
  endif()
  add_test(NAME cuda/nvrtc/${name} COMMAND test_cuda_nvrtc ${example} ${CMAKE_CURRENT_BINARY_DIR}/cuda/nvrtc/${name} ${mode})
  # ~5 s of CPU per attention (NVRTC ~3.3 s: the scaffold once, the tensor-core kernel 4 times; ptxas): label
  # nvrtc, so that `ctest -LE nvrtc` can leave them out
  set_tests_properties(cuda/nvrtc/${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS nvrtc)
endforeach()
# tests/v2/dots.attn and tests/cgen/v2.attn: through nvcc only (cuda/nvcc/v2/dots, cuda/nvcc/v2/v2); through NVRTC
# they took ~180 s and ~27 s of CPU
set(ATTNC_NVRTC_EXAMPLES_V2 ${ATTNC_RT_EXAMPLES_V2})
if(ATTNC_SANITIZE) # as above: the v1 example's compile runs the same library code (~40 s of CPU for tests/cgen/v2.attn)
  set(ATTNC_NVRTC_EXAMPLES_V2)
endif()
foreach(example ${ATTNC_NVRTC_EXAMPLES_V2})
  get_filename_component(name ${example} NAME_WE)
  set(mode --one-arch)
  if(name IN_LIST ATTNC_NVRTC_WHOLE AND NOT ATTNC_SANITIZE)
    set(mode "")
  endif()
  add_test(NAME cuda/nvrtc/v2/${name} COMMAND test_cuda_nvrtc ${example} ${CMAKE_CURRENT_BINARY_DIR}/cuda/nvrtc-v2/${name} ${mode})
  set_tests_properties(cuda/nvrtc/v2/${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS nvrtc)
endforeach()
set(causal ${PROJECT_SOURCE_DIR}/examples/causal.attn)
add_test(NAME cuda/nvrtc-broken COMMAND test_cuda_nvrtc ${causal} ${CMAKE_CURRENT_BINARY_DIR}/cuda/nvrtc-broken --broken)
set_tests_properties(cuda/nvrtc-broken PROPERTIES SKIP_RETURN_CODE 77)
add_test(NAME cuda/no-nvrtc COMMAND test_cuda_nvrtc ${causal} ${CMAKE_CURRENT_BINARY_DIR}/cuda/no-nvrtc --no-nvrtc)
add_test(NAME cuda/no-driver COMMAND test_cuda_nvrtc ${causal} ${CMAKE_CURRENT_BINARY_DIR}/cuda/no-driver --no-driver)
add_test(NAME cuda/no-driver-cli COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_rt_cli.sh $<TARGET_FILE:attnc>
         $<TARGET_FILE:npyrand> ${CMAKE_CURRENT_BINARY_DIR}/cuda/no-driver-cli ${causal})
# on a GPU
add_executable(test_cuda_device ${PROJECT_SOURCE_DIR}/tests/test_cuda_device.c)
target_compile_options(test_cuda_device PRIVATE ${ATTNC_WARNINGS})
target_include_directories(test_cuda_device PRIVATE ${PROJECT_SOURCE_DIR}/base)
target_link_libraries(test_cuda_device PRIVATE attnc_static)
add_test(NAME cuda/gpu-rt/api COMMAND test_cuda_device ${PROJECT_SOURCE_DIR}/examples
         ${PROJECT_SOURCE_DIR}/tests/cgen/variants.attn)
set_tests_properties(cuda/gpu-rt/api PROPERTIES SKIP_RETURN_CODE 77)
foreach(example ${ATTNC_RT_EXAMPLES} ${ATTNC_RT_EXAMPLES_V2})
  get_filename_component(name ${example} NAME_WE)
  add_test(NAME cuda/gpu-rt/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_rt_gpu.sh $<TARGET_FILE:attnc> ${example})
  set_tests_properties(cuda/gpu-rt/${name} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()
