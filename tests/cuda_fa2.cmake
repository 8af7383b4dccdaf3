# tests/cuda_fa2.cmake — cuda-emu's tensor-core kernel (templates/cuda_fa2.cu on the SIMT emulation) against
# the interpreter on every example in f16 and bf16 (cuda-emu/fa2/<example>) and in float32 through TF32
# (cuda-emu/fa2/tf32/<example>; tests/test_cuda_fa2.c), a deliberately wrong fragment mapping and a missing
# barrier that must be seen, the band of keys (cuda-emu/fa2/band), and the FA2 text through nvcc for sm_80 (and sm_90 for float32;
# tests/cuda_fa2_nvcc.sh; skipped, exit 77, without nvcc).
if(ATTNC_HAVE_TCC_JIT)
  add_executable(test_cuda_fa2 ${PROJECT_SOURCE_DIR}/tests/test_cuda_fa2.c)
  target_compile_options(test_cuda_fa2 PRIVATE ${ATTNC_WARNINGS})
  target_link_libraries(test_cuda_fa2 PRIVATE attnc_test_support)
  file(GLOB ATTNC_FA2_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.attn)
  if(ATTNC_SANITIZE)
    # The generated kernel is JIT code, invisible to the sanitizers; what they check (the emulator, the launch)
    # every example exercises alike: two examples (a mask, a low-rank bias) keep the CI under its budget (all of
    # them: ~300 s of the sanitizer build; a tensor-read mask and a weight clause: ~100 s more).
    set(ATTNC_FA2_EXAMPLES ${PROJECT_SOURCE_DIR}/examples/causal.attn ${PROJECT_SOURCE_DIR}/examples/low_rank_bias.attn)
    # float32 adds the emulation's tf32 mma and 32-bit shared loads to what they see: one example (~25 s)
    set(ATTNC_FA2_TF32_EXAMPLES ${PROJECT_SOURCE_DIR}/examples/causal.attn)
  else() # float32 through TF32: the same kernel with another mma and 32-bit loads: the representative set
    set(ATTNC_FA2_TF32_EXAMPLES ${ATTNC_REPRESENTATIVE_EXAMPLES})
  endif()
  foreach(example ${ATTNC_FA2_EXAMPLES})
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME cuda-emu/fa2/${name} COMMAND test_cuda_fa2 ${example})
  endforeach()
  foreach(example ${ATTNC_FA2_TF32_EXAMPLES})
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME cuda-emu/fa2/tf32/${name} COMMAND test_cuda_fa2 ${example} --tf32)
  endforeach()
  # each row's band of keys: masked unevaluated, and S and P V skip the steps no row of a warp keeps (fewer mma,
  # the same O and LSE as the window without a band)
  add_test(NAME cuda-emu/fa2/band COMMAND test_cuda_fa2 ${PROJECT_SOURCE_DIR}/tests/cuda/fa2_band.attn --band)
  # the planted bugs must be seen: what that checks is the test's and the emulator's logic, which the gcc build
  # runs alike; the sanitizer build runs one (CI's 30 minutes; all of them: ~60 s there)
  if(NOT ATTNC_SANITIZE)
    foreach(name causal alibi)
      add_test(NAME cuda-emu/fa2/broken/${name} COMMAND test_cuda_fa2 ${PROJECT_SOURCE_DIR}/examples/${name}.attn --break)
    endforeach()
    add_test(NAME cuda-emu/fa2/broken/barrier COMMAND test_cuda_fa2 ${PROJECT_SOURCE_DIR}/examples/softcap.attn
             --break-barrier)
    add_test(NAME cuda-emu/fa2/tf32/broken/causal COMMAND test_cuda_fa2 ${PROJECT_SOURCE_DIR}/examples/causal.attn
             --tf32 --break)
  endif()
  add_test(NAME cuda-emu/fa2/tf32/broken/barrier COMMAND test_cuda_fa2 ${PROJECT_SOURCE_DIR}/examples/softcap.attn
           --tf32 --break-barrier)
endif()
if(ATTNC_HAVE_TCC_JIT AND NOT ATTNC_SANITIZE) # nvcc's compiles: nothing for the sanitizers to see
  add_test(NAME cuda-emu/fa2/nvcc COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_fa2_nvcc.sh $<TARGET_FILE:test_cuda_fa2>
           ${CMAKE_CURRENT_BINARY_DIR}/cuda_fa2 ${PROJECT_SOURCE_DIR}/examples/causal.attn
           ${PROJECT_SOURCE_DIR}/examples/low_rank_bias.attn ${PROJECT_SOURCE_DIR}/examples/nonsoftmax.attn
           ${PROJECT_SOURCE_DIR}/tests/cuda/fa2_cheap_weight.attn ${PROJECT_SOURCE_DIR}/examples/sliding_window.attn)
  set_tests_properties(cuda-emu/fa2/nvcc PROPERTIES SKIP_RETURN_CODE 77)
endif()
