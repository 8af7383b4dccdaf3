# tests/cuda.cmake — CUDA C emission (backends/cuda/cuda_emit.c, templates/cuda_tile.cu):
# `attnc emit --target cuda` for every attention of every example must name
# its entry point (always), and compile with `nvcc -arch=sm_80 -c` (one test
# per example file; skipped, not passed, when nvcc is missing: exit 77).
# The cuda-emu runs of the same text: tests/examples.cmake (every example),
# tests/cgen.cmake (odd shapes, faults) and the big-tile cases below.
if(ATTNC_HAVE_TCC_JIT)
  file(GLOB ATTNC_CUDA_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.attn)
  add_test(NAME cuda/emit COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_emit.sh $<TARGET_FILE:attnc>
           ${CMAKE_CURRENT_BINARY_DIR}/cuda/emit "" ${ATTNC_CUDA_EXAMPLES})
  foreach(example ${ATTNC_CUDA_EXAMPLES})
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME cuda/nvcc/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_emit.sh $<TARGET_FILE:attnc>
             ${CMAKE_CURRENT_BINARY_DIR}/cuda/nvcc/${name} require ${example})
    set_tests_properties(cuda/nvcc/${name} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
  # q tiles of more rows than a block has threads (each thread runs several rows), on the emulation
  add_test(NAME cuda/emu/big_tiles_low_rank COMMAND test_cgen ${PROJECT_SOURCE_DIR}/examples/low_rank_bias.attn
           --variant flashbias_low_rank --shape B=2,H=4,Hkv=2,Lq=300,Lk=131,D=40,Dv=24 --param rank=5
           --tile 256x16 --threads 2 --backend cuda-emu)
  add_test(NAME cuda/emu/big_tiles_causal COMMAND test_cgen ${PROJECT_SOURCE_DIR}/examples/causal.attn
           --variant causal_bottom_right_aligned --shape B=2,H=6,Hkv=2,Lq=350,Lk=337,D=40,Dv=24
           --tile 256x128 --masked-rows --threads 2 --backend cuda-emu)
  # on a GPU (skipped without nvcc or a GPU): tests/cuda_gpu.sh against the interpreter, params fixed with -D
  function(cuda_gpu_case name spec variant sizes tile)
    add_test(NAME cuda/gpu/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_gpu.sh ${PROJECT_SOURCE_DIR}
             $<TARGET_FILE:attnc> $<TARGET_FILE:npyrand> ${CMAKE_CURRENT_BINARY_DIR}/cuda/gpu/${name}
             ${PROJECT_SOURCE_DIR}/examples/${spec} ${variant} ${sizes} ${tile} ${ARGN})
    set_tests_properties(cuda/gpu/${name} PROPERTIES SKIP_RETURN_CODE 77)
  endfunction()
  cuda_gpu_case(causal causal.attn causal_top_left 2,4,2,130,130,64,64 64x64)
  cuda_gpu_case(causal_br causal.attn causal_bottom_right_aligned 1,4,1,13,50,16,8 16x16)
  cuda_gpu_case(window sliding_window.attn sliding_window_causal 2,4,2,53,61,16,8 16x32 -D window=9)
  cuda_gpu_case(softcap softcap.attn softcap_causal 2,4,2,48,48,16,8 32x16 -D cap=1.5)
  cuda_gpu_case(alibi alibi.attn alibi_causal 2,8,2,48,48,16,8 64x64 -D alibi_max=8.0)
  cuda_gpu_case(sigmoid sigmoid.attn sigmoid_causal 1,4,4,48,48,16,8 16x16)
  cuda_gpu_case(big_tile causal.attn causal_top_left 1,2,2,300,200,32,16 256x32)
  # 16-bit Q, K, V, O staged as float32 in shared memory
  cuda_gpu_case(causal_bf16 causal.attn causal_top_left 2,4,2,130,130,64,64 64x64)
  set_tests_properties(cuda/gpu/causal_bf16 PROPERTIES ENVIRONMENT ATTNC_GPU_DTYPE=bf16)
  cuda_gpu_case(softcap_f16 softcap.attn softcap_causal 2,4,2,48,48,16,8 32x16 -D cap=1.5)
  set_tests_properties(cuda/gpu/softcap_f16 PROPERTIES ENVIRONMENT ATTNC_GPU_DTYPE=f16)
endif()
