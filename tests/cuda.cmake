# tests/cuda.cmake — CUDA C emission (backends/cuda/cuda_emit.c, templates/cuda_tile.cu):
# `attnc emit --target cuda` for every attention of every example must name
# its entry point (always), and compile with nvcc for sm_80 (two example files
# and two v2 files; NVRTC compiles every example: tests/cuda_rt.cmake; skipped,
# not passed, when nvcc is missing: exit 77).
# The cuda-emu runs of the same text: tests/examples.cmake (every example),
# tests/cgen.cmake (odd shapes, faults) and the big-tile cases below.
if(ATTNC_HAVE_TCC_JIT)
  file(GLOB ATTNC_CUDA_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.attn)
  add_test(NAME cuda/emit COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_emit.sh $<TARGET_FILE:attnc>
           ${CMAKE_CURRENT_BINARY_DIR}/cuda/emit "" ${ATTNC_CUDA_EXAMPLES})
  # NVRTC compiles every example's device code (tests/cuda_rt.cmake); nvcc the host code and the launch too, which
  # the template prints alike for every example: a mask, a low-rank bias and diagonal tables (T5's buckets) (CI's
  # 30 minutes)
  set(ATTNC_NVCC_EXAMPLES ${PROJECT_SOURCE_DIR}/examples/causal.attn ${PROJECT_SOURCE_DIR}/examples/low_rank_bias.attn
      ${PROJECT_SOURCE_DIR}/examples/relative_bias_1d.attn)
  if(ATTNC_SANITIZE) # what the sanitizers see (attnc emit) cuda/emit runs on every example; the compiles are nvcc's
    set(ATTNC_NVCC_EXAMPLES ${PROJECT_SOURCE_DIR}/examples/causal.attn)
  endif()
  foreach(example ${ATTNC_NVCC_EXAMPLES})
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME cuda/nvcc/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_emit.sh $<TARGET_FILE:attnc>
             ${CMAKE_CURRENT_BINARY_DIR}/cuda/nvcc/${name} require ${example})
    set_tests_properties(cuda/nvcc/${name} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
  # version 2 (backends/cuda/cuda_emit_v2.c): the text of every v2 example and of tests/cgen/v2.attn, with its
  # own kernels around the attention kernel and NAME_cuda_launch running them, through nvcc when there is one
  file(GLOB ATTNC_CUDA_V2 CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/v2/*.attn)
  list(APPEND ATTNC_CUDA_V2 ${PROJECT_SOURCE_DIR}/tests/cgen/v2.attn ${PROJECT_SOURCE_DIR}/tests/v2/dots.attn)
  add_test(NAME cuda/emit-v2 COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_emit.sh $<TARGET_FILE:attnc>
           ${CMAKE_CURRENT_BINARY_DIR}/cuda/emit-v2 "" ${ATTNC_CUDA_V2})
  # NVRTC compiles every v2 example's text (tests/cuda_rt.cmake); nvcc: tests/cgen/v2.attn (every v2 construct,
  # host code included) and dots.attn
  set(ATTNC_NVCC_V2 ${PROJECT_SOURCE_DIR}/tests/cgen/v2.attn ${PROJECT_SOURCE_DIR}/tests/v2/dots.attn)
  if(ATTNC_SANITIZE) # as above: cuda/emit-v2 emits every one
    set(ATTNC_NVCC_V2)
  endif()
  foreach(example ${ATTNC_NVCC_V2})
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME cuda/nvcc/v2/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_emit.sh $<TARGET_FILE:attnc>
             ${CMAKE_CURRENT_BINARY_DIR}/cuda/nvcc-v2/${name} require ${example})
    set_tests_properties(cuda/nvcc/v2/${name} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
  # cuda-emu runs version 2 through those kernels (api/api_cuda_v2.c), against the interpreter, beyond the
  # examples' shapes (tests/examples.cmake) and tests/cgen.cmake's v2 cases: odd D, GQA, Lq != Lk, position ids,
  # partial rotation, f16 / bf16 inputs (D not a multiple of 16: the scaffold, whose float32 arithmetic these
  # strict comparisons expect; the tensor-core kernel rounds P to 16 bits), sinks on rows the masks empty
  set(v2 ${PROJECT_SOURCE_DIR}/examples/v2)
  function(cuda_emu_v2 name spec)
    add_test(NAME cuda/emu/v2/${name} COMMAND test_cgen ${spec} ${ARGN} --threads 2 --backend cuda-emu)
  endfunction()
  cuda_emu_v2(position_ids_gqa ${v2}/rotary.attn --variant position_ids --shape B=2,H=6,Hkv=2,Lq=21,Lk=33,D=18,Dv=5
              --int-range qpos=0,70 --int-range kvpos=0,70 --tile 16x16)
  cuda_emu_v2(gptj_odd ${v2}/rotary.attn --variant gptj --param rotary_dims=6 --shape B=1,H=4,Hkv=2,Lq=19,Lk=26,D=14,Dv=7)
  cuda_emu_v2(llama_bf16 ${v2}/rotary.attn --variant llama --shape B=2,H=4,Hkv=2,Lq=33,Lk=33,D=16,Dv=16
              --layout bf16)
  cuda_emu_v2(shaw_odd_d ${v2}/relative_embeddings.attn --variant shaw_relative --param M=4
              --shape B=1,H=4,Hkv=2,Lq=29,Lk=35,D=13,Dv=3)
  cuda_emu_v2(music_f16 ${v2}/relative_embeddings.attn --variant music_transformer
              --shape B=1,H=2,Hkv=2,Lq=40,Lk=40,D=18,Dv=18 --layout f16)
  cuda_emu_v2(deberta_gqa_odd ${v2}/deberta.attn --variant deberta --param k=5
              --shape B=2,H=4,Hkv=2,Lq=23,Lk=31,D=11,Dv=6)
  # Lq > Lk: causal_bottom_right empties the first 17 rows, which keep only the sink (O = 0, LSE = sink)
  cuda_emu_v2(sinks_empty_rows ${v2}/learned_sinks.attn --variant gpt_oss_full --shape B=1,H=4,Hkv=2,Lq=37,Lk=20,D=16,Dv=8)
  cuda_emu_v2(sinks_window_gqa ${v2}/learned_sinks.attn --variant gpt_oss_local --param local_window=3
              --shape B=2,H=8,Hkv=2,Lq=29,Lk=29,D=12,Dv=5 --tile 16x16)
  cuda_emu_v2(sinks_bf16_blhd ${v2}/learned_sinks.attn --variant gpt_oss_full --shape B=2,H=4,Hkv=4,Lq=24,Lk=24,D=18,Dv=18
              --layout blhd_bf16)

  # attnc_kernel_run_cuda's version-2 sequence (api/api_cuda_v2.c's device executor) on a fake device whose
  # kernels are cuda-emu's (tests/test_cuda_v2_device.c)
  add_executable(test_cuda_v2_device ${PROJECT_SOURCE_DIR}/tests/test_cuda_v2_device.c)
  target_compile_options(test_cuda_v2_device PRIVATE ${ATTNC_WARNINGS})
  target_link_libraries(test_cuda_v2_device PRIVATE attnc_test_support)
  function(cuda_v2_device name spec variant args)
    add_test(NAME cuda/emu/v2-device/${name} COMMAND test_cuda_v2_device ${spec} ${variant} ${args} ${ARGN})
  endfunction()
  cuda_v2_device(position_ids ${v2}/rotary.attn position_ids
                 "--shape B=2,H=6,Hkv=2,Lq=21,Lk=33,D=18,Dv=5 --int-range qpos=0,70 --int-range kvpos=0,70")
  cuda_v2_device(gptj ${v2}/rotary.attn gptj "--shape B=1,H=4,Hkv=2,Lq=19,Lk=26,D=14,Dv=7 --param rotary_dims=6")
  cuda_v2_device(deberta ${v2}/deberta.attn deberta "--shape B=2,H=4,Hkv=2,Lq=23,Lk=31,D=11,Dv=6 --param k=5")
  cuda_v2_device(shaw ${v2}/relative_embeddings.attn shaw_relative "--shape B=1,H=4,Hkv=2,Lq=29,Lk=35,D=13,Dv=3 --param M=4")
  cuda_v2_device(sinks_empty_rows ${v2}/learned_sinks.attn gpt_oss_full "--shape B=1,H=4,Hkv=2,Lq=37,Lk=20,D=18,Dv=8")
  cuda_v2_device(everything ${PROJECT_SOURCE_DIR}/tests/cgen/v2.attn everything
                 "--shape B=2,H=4,Hkv=2,Lq=37,Lk=41,D=18,Dv=8")
  # dot(Q, K) as a sum over the tensors rows(Q), rows(K): the rows kernel's output, rotated
  cuda_v2_device(qk_bias_rotary ${PROJECT_SOURCE_DIR}/tests/v2/dots.attn qk_bias_rotary
                 "--shape B=2,H=4,Hkv=2,Lq=19,Lk=23,D=10,Dv=6")
  cuda_v2_device(sink_fault ${PROJECT_SOURCE_DIR}/tests/cgen/v2.attn sink_fault
                 "--shape B=1,H=4,Hkv=2,Lq=10,Lk=13,D=16,Dv=8 --param off=1" --expect-fault)
  # a position out of range on rows that keep nothing: no error; the interpreter's O and LSE (written back)
  set(lazy ${PROJECT_SOURCE_DIR}/tests/cuda/v2_lazy.attn)
  cuda_v2_device(lazy_qpos ${lazy} lazy_qpos "--shape B=1,H=4,Hkv=2,Lq=20,Lk=12,D=14,Dv=6 --int-range P=0,30")
  cuda_emu_v2(lazy_qpos ${lazy} --variant lazy_qpos --shape B=1,H=4,Hkv=2,Lq=20,Lk=12,D=14,Dv=6 --int-range P=0,30
              --masked-rows)
  cuda_v2_device(qpos_fault ${PROJECT_SOURCE_DIR}/tests/cgen/v2.attn qpos_fault
                 "--shape B=1,H=4,Hkv=2,Lq=10,Lk=13,D=16,Dv=8 --param off=1" --expect-fault)

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
    # without a GPU: nvcc compiles the kernel and the driver for three cases (one per element type the
    # driver stages), the others' texts being compiled by cuda/nvcc already; none in the sanitizer build
    # (attnc's part - emit, the interpreter's O - is all the sanitizers see); CI's 30 minutes
    if(ATTNC_SANITIZE OR NOT name MATCHES "^(causal|causal_bf16|softcap_f16)$")
      set_property(TEST cuda/gpu/${name} APPEND PROPERTY ENVIRONMENT ATTNC_GPU_SKIP_COMPILE=1)
    endif()
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
  set_property(TEST cuda/gpu/causal_bf16 APPEND PROPERTY ENVIRONMENT ATTNC_GPU_DTYPE=bf16)
  cuda_gpu_case(softcap_f16 softcap.attn softcap_causal 2,4,2,48,48,16,8 32x16 -D cap=1.5)
  set_property(TEST cuda/gpu/softcap_f16 APPEND PROPERTY ENVIRONMENT ATTNC_GPU_DTYPE=f16)
endif()
