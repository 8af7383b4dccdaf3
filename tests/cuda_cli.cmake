# tests/cuda_cli.cmake — the command line's CUDA parts: `attnc emit --target cuda --dtype f16|bf16 --head-dim`
# (the tensor-core kernel's text; tests/cuda_fa2_emit.sh: the text always, nvcc and its PTX when nvcc is there,
# else skipped, exit 77), and bench/gpu.sh's self-check (its command lines and the torch side's CPU smoke run:
# no GPU, no timing).
add_test(NAME cuda/fa2-emit/cli COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_fa2_emit.sh $<TARGET_FILE:attnc>
         ${CMAKE_CURRENT_BINARY_DIR}/cuda/fa2-emit/cli text ${PROJECT_SOURCE_DIR}/examples/causal.attn causal_top_left)
if(NOT ATTNC_SANITIZE) # nvcc's work; cuda/fa2-emit/cli runs attnc's part
  add_test(NAME cuda/fa2-emit/nvcc COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_fa2_emit.sh $<TARGET_FILE:attnc>
           ${CMAKE_CURRENT_BINARY_DIR}/cuda/fa2-emit/nvcc nvcc ${PROJECT_SOURCE_DIR}/examples/softcap.attn softcap_causal)
  set_tests_properties(cuda/fa2-emit/nvcc PROPERTIES SKIP_RETURN_CODE 77)
  # T5's bucket bias as diagonal tables (templates/cuda_fa2.cu's DIAG; docs/toeplitz.md)
  add_test(NAME cuda/fa2-emit/nvcc-toeplitz COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_fa2_emit.sh $<TARGET_FILE:attnc>
           ${CMAKE_CURRENT_BINARY_DIR}/cuda/fa2-emit/nvcc-toeplitz nvcc ${PROJECT_SOURCE_DIR}/examples/relative_bias_1d.attn
           t5_relative tables)
  set_tests_properties(cuda/fa2-emit/nvcc-toeplitz PROPERTIES SKIP_RETURN_CODE 77)
endif()
# bench/gpu.sh without a GPU: --dry-run prints the build, ctest and `attnc bench` commands (every variant's,
# the document's with its tensor); --self-check checks the torch setups (SDPA's masks and biases,
# flex_attention's block masks and score_mods) against a float64 reference and `attnc run` on this build's
# default backend at float32, then a tiny table, on the CPU (skipped, exit 77, without a python that imports
# torch and numpy: ATTNC_TORCH_PYTHON at configure time, else python3).  No timing is checked.
add_test(NAME bench/gpu-dry-run COMMAND bash ${PROJECT_SOURCE_DIR}/bench/gpu.sh --dry-run --build ${CMAKE_BINARY_DIR})
set_tests_properties(bench/gpu-dry-run PROPERTIES
  PASS_REGULAR_EXPRESSION "cmake --build[^\n]*\n.*ctest --test-dir.*attnc bench [^\n]*document.attn [^\n]*--tensor doc=")
add_test(NAME bench/gpu-self-check COMMAND bash ${PROJECT_SOURCE_DIR}/bench/gpu.sh --self-check --build ${CMAKE_BINARY_DIR})
set_tests_properties(bench/gpu-self-check PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
  ENVIRONMENT "ATTNC_TORCH_PYTHON=$ENV{ATTNC_TORCH_PYTHON}")
