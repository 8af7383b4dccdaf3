# Per-example families come in two sizes.  ATTNC_CHECKED_EXAMPLES: every example in the gcc build; in the sanitizer
# build a representative set (ATTNC_REPRESENTATIVE_EXAMPLES) for the families that check JIT or ahead-of-time code
# (llvm, tcc, cc-compiled C: code the sanitizers do not see), whose C around the kernels (binding, launch, the
# backward's plumbing, decode's packing and splits) runs alike for every example.  ATTNC_REPRESENTATIVE_EXAMPLES in
# both builds: families that repeat, at another vector width, element type or compiler, what a family on every
# example already checks (grad llvm-w4/llvm-bf16 beside grad llvm; llvm/decode's narrow widths beside decode/*/llvm;
# nvcc beside NVRTC; cuda-emu's tf32 beside f16/bf16).  The set: a mask, a bias, a tensor-read mask, a low-rank sum,
# a grid mask, a table with runtime errors, a weight clause and a score transform.  (CI's 30 minutes on 2 cores.)
set(ATTNC_REPRESENTATIVE_EXAMPLES)
foreach(name causal alibi document low_rank_bias neighborhood_2d relative_bias_1d nonsoftmax softcap)
  list(APPEND ATTNC_REPRESENTATIVE_EXAMPLES ${PROJECT_SOURCE_DIR}/examples/${name}.attn)
endforeach()
file(GLOB ATTNC_CHECKED_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.attn)
# The compiled backends runtime/launch.c runs (decode, v2 examples, packed K and V)
set(ATTNC_LAUNCH_BACKENDS refplan)
if(ATTNC_HAVE_TCC_JIT)
  list(APPEND ATTNC_LAUNCH_BACKENDS tcc cuda-emu)
endif()
if(ATTNC_HAVE_LLVM_BACKEND)
  list(APPEND ATTNC_LAUNCH_BACKENDS llvm)
endif()
if(ATTNC_SANITIZE)
  set(ATTNC_CHECKED_EXAMPLES ${ATTNC_REPRESENTATIVE_EXAMPLES})
endif()
include(tests/npy.cmake)
include(tests/examples.cmake)
include(tests/grad_backends.cmake)
include(tests/decode.cmake)
include(tests/fuzz.cmake)
include(tests/interp.cmake)
include(tests/grid.cmake)
include(tests/grad.cmake)
add_test(NAME cli/exit-statuses COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cli.sh $<TARGET_FILE:attnc> $<TARGET_FILE:npyrand>)
add_executable(test_hostile ${PROJECT_SOURCE_DIR}/tests/test_hostile.c)
target_compile_options(test_hostile PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_hostile PRIVATE attnc_static m)
add_test(NAME hostile/specs COMMAND test_hostile)
include(tests/diag.cmake)
# The tile analysis against brute force, on built-in masks and every example.
add_executable(test_tiles ${PROJECT_SOURCE_DIR}/tests/test_tiles.c)
target_compile_options(test_tiles PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_tiles PRIVATE attnc_test_support)
file(GLOB ATTNC_TILE_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.attn)
add_test(NAME middle-end/tiles COMMAND test_tiles ${ATTNC_TILE_EXAMPLES})
# Each row's band of keys (middle/pass_band.c) against brute force: sound everywhere, exact on band masks.
add_executable(test_band ${PROJECT_SOURCE_DIR}/tests/test_band.c)
target_compile_options(test_band PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_band PRIVATE attnc_test_support)
add_test(NAME middle-end/band COMMAND test_band ${ATTNC_TILE_EXAMPLES})
# refplan executes the schedule: removing any one step of it changes the answer.
add_executable(test_refplan_sched ${PROJECT_SOURCE_DIR}/tests/test_refplan_sched.c)
target_compile_options(test_refplan_sched PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_refplan_sched PRIVATE attnc_test_support)
add_test(NAME middle-end/refplan-schedule COMMAND test_refplan_sched)
# Golden dumps of the IR and kernel plan (`// golden-args: emit ...` in each file).
file(GLOB ATTNC_PLAN_GOLDEN CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/plan/*.attn)
foreach(spec ${ATTNC_PLAN_GOLDEN})
  get_filename_component(name ${spec} NAME_WE)
  if(name STREQUAL "t5_toeplitz" AND NOT ATTNC_HAVE_LLVM_BACKEND)
    continue() # diagonal tables are in llvm's plans (the dumps' default backend), not tcc's
  endif()
  add_test(NAME plan/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/golden.sh $<TARGET_FILE:attnc> ${spec})
endforeach()
# The embedding example: a C program using only the public header and the library.
add_executable(embed_example ${PROJECT_SOURCE_DIR}/examples/embed/embed.c)
target_compile_options(embed_example PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(embed_example PRIVATE attnc_static m)
add_test(NAME example/embed COMMAND embed_example)
# One decode step against a paged f16 KV cache (issue 11), checked against the contiguous cache.
add_executable(decode_example ${PROJECT_SOURCE_DIR}/examples/embed/decode.c)
target_compile_options(decode_example PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(decode_example PRIVATE attnc_static m)
add_test(NAME example/embed-decode COMMAND decode_example 1000)
# A training step from C (issue 12): forward, backward, the bias table's gradient, a descent step.
add_executable(train_step_example ${PROJECT_SOURCE_DIR}/examples/embed/train_step.c)
target_compile_options(train_step_example PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(train_step_example PRIVATE attnc_static m)
add_test(NAME example/embed-train-step COMMAND train_step_example refplan)
if(ATTNC_HAVE_TCC_JIT)
  add_test(NAME example/embed-train-step-tcc COMMAND train_step_example tcc)
endif()
if(ATTNC_HAVE_LLVM_BACKEND)
  add_test(NAME example/embed-train-step-llvm COMMAND train_step_example llvm)
endif()
include(tests/cgen.cmake)
include(tests/v2.cmake)
include(tests/llvm.cmake)
# The same program against the shared library.
add_executable(embed_example_shared ${PROJECT_SOURCE_DIR}/examples/embed/embed.c)
target_compile_options(embed_example_shared PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(embed_example_shared PRIVATE attnc_shared m)
add_test(NAME example/embed-shared COMMAND embed_example_shared)
include(tests/cuda.cmake)
include(tests/cuda_simt.cmake)
include(tests/cuda_fa2.cmake)
include(tests/cuda_cli.cmake)
include(tests/cuda_rt.cmake)
include(tests/nomem.cmake)
include(tests/difffuzz.cmake)
# The worker pool: thread indices stay below what each call asks for.
add_executable(test_threads ${PROJECT_SOURCE_DIR}/tests/test_threads.c)
target_compile_options(test_threads PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_threads PRIVATE attnc_internal)
add_test(NAME runtime/threads COMMAND test_threads)
# The layers point one way (tests/layering.sh reads every #include of the sources).
add_test(NAME layering COMMAND bash ${PROJECT_SOURCE_DIR}/tests/layering.sh ${PROJECT_SOURCE_DIR})
# The schedule's verifier rejects every schedule missing one step; every example's schedule passes it.
add_executable(test_schedule ${PROJECT_SOURCE_DIR}/tests/test_schedule.c)
target_compile_options(test_schedule PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_schedule PRIVATE attnc_test_support)
add_test(NAME middle-end/schedule COMMAND test_schedule ${ATTNC_TILE_EXAMPLES} ${ATTNC_PLAN_GOLDEN})
# f16 / bf16 conversions (base/half.h) against independent references.
add_executable(test_half ${PROJECT_SOURCE_DIR}/tests/test_half.c ${PROJECT_SOURCE_DIR}/runtime/tensor_widen.c)
target_compile_options(test_half PRIVATE ${ATTNC_WARNINGS})
target_include_directories(test_half PRIVATE ${PROJECT_SOURCE_DIR}/base ${PROJECT_SOURCE_DIR}/runtime ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(test_half PRIVATE m)
add_test(NAME base/half-conversions COMMAND test_half)
# Element types and strides through attnc_kernel_run_layout on interp and refplan, against the interpreter on
# rounded float32 copies; hostile layouts refused (issue 10).
add_executable(test_layouts_api ${PROJECT_SOURCE_DIR}/tests/test_layouts_api.c)
target_compile_options(test_layouts_api PRIVATE ${ATTNC_WARNINGS})
target_include_directories(test_layouts_api PRIVATE ${PROJECT_SOURCE_DIR}/base)
target_link_libraries(test_layouts_api PRIVATE attnc_test_support)
target_include_directories(test_layouts_api PRIVATE ${PROJECT_SOURCE_DIR}/runtime) # launch_stats.h: --packed
add_test(NAME call/layouts-api COMMAND test_layouts_api interp refplan)
# K and V rows of each kv head copied back to back (runtime/launch.c: pack_head), on every backend launch.c runs
add_test(NAME call/layouts-api-packed COMMAND test_layouts_api --packed ${ATTNC_LAUNCH_BACKENDS})
# --dtype and --layout of run, diff and bench, Python-free (npyconv makes the inputs and compares outputs).
add_executable(npyconv ${PROJECT_SOURCE_DIR}/tests/tools/npyconv.c)
target_include_directories(npyconv PRIVATE ${PROJECT_SOURCE_DIR}/base)
target_compile_options(npyconv PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(npyconv PRIVATE attnc_npy)
add_test(NAME cli/layouts COMMAND bash ${PROJECT_SOURCE_DIR}/tests/layouts_cli.sh $<TARGET_FILE:attnc> $<TARGET_FILE:npyrand>
                                      $<TARGET_FILE:npyconv>)
# Merging partial results (issue 11, item 5): attnc_merge of two calls over a split of the keys against one call,
# on the interpreter and the fastest compiled backend, merge_row's edge cases and hostile arguments.
add_executable(test_merge ${PROJECT_SOURCE_DIR}/tests/test_merge.c)
target_compile_options(test_merge PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_merge PRIVATE attnc_test_support)
add_test(NAME api/merge COMMAND test_merge ${PROJECT_SOURCE_DIR}/examples)
add_executable(npyclose ${PROJECT_SOURCE_DIR}/tests/tools/npyclose.c)
target_compile_options(npyclose PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(npyclose PRIVATE attnc_npy)
add_test(NAME cli/merge COMMAND bash ${PROJECT_SOURCE_DIR}/tests/merge_cli.sh $<TARGET_FILE:attnc> $<TARGET_FILE:npyrand>
                                    $<TARGET_FILE:npyclose>)
add_executable(test_batch ${PROJECT_SOURCE_DIR}/tests/test_batch.c)
target_compile_options(test_batch PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_batch PRIVATE attnc_test_support)
add_test(NAME api/batch COMMAND test_batch)
add_test(NAME cli/ragged COMMAND bash ${PROJECT_SOURCE_DIR}/tests/ragged_cli.sh $<TARGET_FILE:attnc> $<TARGET_FILE:npyrand>
                                     $<TARGET_FILE:npyclose>)
# Derivatives (issue 12): ir_derive and the backward plan's tensor terms against finite differences, every example.
add_executable(test_derive ${PROJECT_SOURCE_DIR}/tests/test_derive.c)
target_compile_options(test_derive PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_derive PRIVATE attnc_test_support)
add_test(NAME middle-end/derive COMMAND test_derive ${ATTNC_TILE_EXAMPLES})
# attnc grad, diff --grad, bench --grad (issue 12): shapes, layouts, backends, hostile command lines.
add_test(NAME cli/grad COMMAND bash ${PROJECT_SOURCE_DIR}/tests/grad_cli.sh $<TARGET_FILE:attnc> $<TARGET_FILE:npyrand>
                                   $<TARGET_FILE:npyclose> $<TARGET_FILE:npyconv>)
include(tests/python.cmake)

# attnc_kernel_picture and `attnc show` (issue 16: pictures)
add_executable(test_picture ${PROJECT_SOURCE_DIR}/tests/test_picture.c)
target_compile_options(test_picture PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_picture PRIVATE attnc_static PNG::PNG)
add_test(NAME api/picture COMMAND test_picture)
add_test(NAME cli/show COMMAND bash ${PROJECT_SOURCE_DIR}/tests/picture_cli.sh $<TARGET_FILE:attnc>
         $<TARGET_FILE:test_picture> ${CMAKE_CURRENT_BINARY_DIR}/show)
# Toeplitz hoisting (docs/toeplitz.md): diagonal tables on every backend against the interpreter (cuda-emu: the
# CUDA text's scaffold and tensor-core kernels; grid tables are llvm's, refplan's and tcc's).
set(ATTNC_TOEPLITZ_BACKENDS refplan)
if(ATTNC_HAVE_LLVM_BACKEND)
  string(APPEND ATTNC_TOEPLITZ_BACKENDS ",llvm")
endif()
if(ATTNC_HAVE_TCC_JIT)
  string(APPEND ATTNC_TOEPLITZ_BACKENDS ",tcc,cuda-emu")
endif()
add_test(NAME toeplitz/backends COMMAND bash ${PROJECT_SOURCE_DIR}/tests/toeplitz.sh $<TARGET_FILE:attnc> ${ATTNC_TOEPLITZ_BACKENDS})
# ... and grid tables: terms of the cells' offsets in the block-order plan (docs/toeplitz.md, "Grid tables").
add_test(NAME toeplitz/grid COMMAND bash ${PROJECT_SOURCE_DIR}/tests/toeplitz_grid.sh $<TARGET_FILE:attnc> ${ATTNC_TOEPLITZ_BACKENDS})
# A kernel's kept tile map (runtime/map_cache.h): params, sizes and mask tensors changing between calls, two threads.
add_executable(test_map_cache ${PROJECT_SOURCE_DIR}/tests/test_map_cache.c)
target_compile_options(test_map_cache PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_map_cache PRIVATE attnc_static m Threads::Threads)
target_include_directories(test_map_cache PRIVATE ${PROJECT_SOURCE_DIR}/runtime) # launch_stats.h: reuses counted
add_test(NAME runtime/map-cache COMMAND test_map_cache)
