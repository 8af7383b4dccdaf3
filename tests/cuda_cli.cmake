# tests/cuda_cli.cmake — the command line's CUDA parts: `attnc emit --target cuda --dtype f16|bf16 --head-dim`
# (the tensor-core kernel's text; tests/cuda_fa2_emit.sh: the text always, nvcc and its PTX when nvcc is there,
# else skipped, exit 77), and bench/gpu.sh's self-check (its command lines and the torch side's CPU smoke run:
# no GPU, no timing).
add_test(NAME cuda/fa2-emit/cli COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_fa2_emit.sh $<TARGET_FILE:attnc>
         ${CMAKE_CURRENT_BINARY_DIR}/cuda/fa2-emit/cli text ${PROJECT_SOURCE_DIR}/examples/causal.attn causal_top_left)
add_test(NAME cuda/fa2-emit/nvcc COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_fa2_emit.sh $<TARGET_FILE:attnc>
         ${CMAKE_CURRENT_BINARY_DIR}/cuda/fa2-emit/nvcc nvcc ${PROJECT_SOURCE_DIR}/examples/softcap.attn softcap_causal)
set_tests_properties(cuda/fa2-emit/nvcc PROPERTIES SKIP_RETURN_CODE 77)
