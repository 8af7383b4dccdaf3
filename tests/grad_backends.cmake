# tests/grad_backends.cmake — the compiled backends' backward passes against
# the reference backward (tests/test_grad_backends.c): every example, tiles
# of 16 (several per call), D and Dv not powers of two, f32 and the 16-bit
# element types, shapes with fully masked rows and Lq != Lk; determinism
# with 1 and 3 threads inside each run.
add_executable(test_grad_backends ${PROJECT_SOURCE_DIR}/tests/test_grad_backends.c)
target_compile_options(test_grad_backends PRIVATE ${ATTNC_WARNINGS})
target_include_directories(test_grad_backends PRIVATE ${PROJECT_SOURCE_DIR}/base)
target_link_libraries(test_grad_backends PRIVATE attnc_test_support)
if(ATTNC_HAVE_TCC_JIT)
  foreach(example ${ATTNC_CHECKED_EXAMPLES}) # every example; a representative set under the sanitizers (tests.cmake)
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME grad/${name}/tcc COMMAND test_grad_backends ${example} --shape D=12,Dv=5)
    add_test(NAME grad/${name}/tcc-bf16 COMMAND test_grad_backends ${example} --elem bf16 --tile 32)
  endforeach()
  set(ex ${PROJECT_SOURCE_DIR}/examples)
  # fully masked rows (bottom-right causal with Lq > Lk), odd sizes, GQA 4:1, f16
  add_test(NAME grad/causal-masked-rows/tcc-f16 COMMAND test_grad_backends ${ex}/causal.attn --elem f16
           --shape B=2,H=8,Hkv=2,Lq=37,Lk=21,D=7,Dv=3 --tile 8)
  add_test(NAME grad/relative_bias_1d-long/tcc COMMAND test_grad_backends ${ex}/relative_bias_1d.attn
           --shape Lq=71,Lk=90,D=20,Dv=9 --tile 16)
endif()
# The ahead-of-time C's backward entry point (NAME_backward) compiled by cc
# (-Wall -Werror) against the reference backward, on the representative
# examples (tests.cmake): the text is the one grad/<example>/tcc runs on every
# example; cc on all 32 took ~100 s of CI's CPU (its 30 minutes).
add_executable(test_grad_aot ${PROJECT_SOURCE_DIR}/tests/test_grad_aot.c)
target_compile_options(test_grad_aot PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_grad_aot PRIVATE attnc_test_support ${CMAKE_DL_LIBS})
foreach(example ${ATTNC_REPRESENTATIVE_EXAMPLES})
  get_filename_component(name ${example} NAME_WE)
  set(work ${CMAKE_CURRENT_BINARY_DIR}/aot-grad/${name})
  file(MAKE_DIRECTORY ${work})
  add_test(NAME grad/${name}/aot COMMAND test_grad_aot ${example} $<TARGET_FILE:attnc> cc ${work})
endforeach()
# Version 2 (rows, rotary, sinks: api/api_grad_v2.c around the kernel's backward) on every CPU backend with a
# backward: each example (D = 24 fits every rotary's dims, GPT-J's 8 < D), odd D for the dot rows, GQA with
# position ids, fully masked rows with a sink (bottom-right causal, Lq > Lk), f16/bf16 and [B, L, H, D].
file(GLOB ATTNC_GRAD_EXAMPLES_V2 CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/v2/*.attn)
set(ATTNC_GRAD_V2_BACKENDS refplan)
if(ATTNC_HAVE_TCC_JIT AND NOT ATTNC_SANITIZE) # (its plumbing is llvm's and refplan's; its kernels are JIT code)
  list(APPEND ATTNC_GRAD_V2_BACKENDS tcc)
endif()
if(ATTNC_HAVE_LLVM_BACKEND)
  list(APPEND ATTNC_GRAD_V2_BACKENDS llvm)
endif()
set(v2 ${PROJECT_SOURCE_DIR}/examples/v2)
foreach(backend ${ATTNC_GRAD_V2_BACKENDS})
  foreach(example ${ATTNC_GRAD_EXAMPLES_V2})
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME grad/v2/${name}/${backend} COMMAND test_grad_backends ${example} --backend ${backend}
             --shape D=24,Dv=5)
    add_test(NAME grad/v2/${name}/${backend}-bf16-blhd COMMAND test_grad_backends ${example} --backend ${backend}
             --elem bf16 --layout blhd --tile 32)
  endforeach()
  add_test(NAME grad/v2/relative_embeddings-odd-d/${backend} COMMAND test_grad_backends
           ${v2}/relative_embeddings.attn --backend ${backend} --shape D=13,Dv=3,Lq=29,Lk=35)
  add_test(NAME grad/v2/deberta-odd-d-gqa/${backend} COMMAND test_grad_backends ${v2}/deberta.attn
           --backend ${backend} --shape H=6,Hkv=2,D=7,Dv=4 --tile 8)
  add_test(NAME grad/v2/rotary-gqa/${backend}-f16 COMMAND test_grad_backends ${v2}/rotary.attn
           --backend ${backend} --elem f16 --shape B=2,H=6,Hkv=2,Lq=23,Lk=31,D=24,Dv=3 --tile 8)
  add_test(NAME grad/v2/sinks-masked-rows/${backend}-f16 COMMAND test_grad_backends ${v2}/learned_sinks.attn
           --backend ${backend} --elem f16 --shape B=2,H=4,Hkv=2,Lq=37,Lk=21,D=7,Dv=3 --tile 8)
endforeach()
# Version 2 ahead of time: NAME_backward of every v2 example, of tests/cgen/v2.attn's cases (odd D, GQA,
# fully masked rows with a sink, everything at once) and of tests/cgen/v2_grad.attn's (a sink's expression
# with a sum chain, position ids with GQA and a table of K rows), compiled by cc and (four of them), when found,
# clang (-Wall -Wextra -Werror); a sink's or a position's runtime error returns 1 and writes nothing; one under
# valgrind.
find_program(ATTNC_CLANG clang)
find_program(ATTNC_VALGRIND valgrind)
set(ATTNC_AOT_GRAD_CCS cc)
if(ATTNC_CLANG AND NOT ATTNC_SANITIZE) # the second compiler's work is nothing the sanitizers see
  list(APPEND ATTNC_AOT_GRAD_CCS ${ATTNC_CLANG})
endif()
# clang: the cases that reach every part of the emitted backward (rotation, tables, sink terms, dots); what the
# others add is cc's check of the same constructs (all 18 through clang took ~46 s of CI's CPU)
set(ATTNC_AOT_GRAD_CLANG_CASES rotary everything sink_expr dots-qk-bias)
set(cg ${PROJECT_SOURCE_DIR}/tests/cgen/v2.attn)
function(aot_grad_v2 name spec)
  foreach(cc ${ATTNC_AOT_GRAD_CCS})
    get_filename_component(ccname ${cc} NAME)
    if((NOT cc STREQUAL "cc" OR ATTNC_SANITIZE) AND NOT name IN_LIST ATTNC_AOT_GRAD_CLANG_CASES)
      continue() # the sanitizer build: cc's code is not instrumented; attnc emit's part is seen in these four
    endif()
    set(work ${CMAKE_CURRENT_BINARY_DIR}/aot-grad/v2-${name}-${ccname})
    file(MAKE_DIRECTORY ${work})
    add_test(NAME grad/v2/${name}/aot-${ccname} COMMAND test_grad_aot ${spec} $<TARGET_FILE:attnc> ${cc} ${work} ${ARGN})
  endforeach()
endfunction()
foreach(example ${ATTNC_GRAD_EXAMPLES_V2})
  get_filename_component(name ${example} NAME_WE)
  aot_grad_v2(${name} ${example})
endforeach()
aot_grad_v2(shaw-odd-d ${v2}/relative_embeddings.attn --variant shaw_relative
            --shape B=1,H=4,Hkv=2,Lq=29,Lk=35,D=13,Dv=3 --param M=6)
aot_grad_v2(music-odd-d ${v2}/relative_embeddings.attn --variant music_transformer
            --shape B=1,H=3,Hkv=1,Lq=29,Lk=35,D=13,Dv=3)
aot_grad_v2(deberta-odd-d-gqa ${v2}/deberta.attn --shape B=2,H=6,Hkv=2,Lq=21,Lk=21,D=7,Dv=4 --param k=5)
aot_grad_v2(rotary-gqa ${v2}/rotary.attn --variant gpt_neox_partial --shape B=2,H=6,Hkv=2,Lq=23,Lk=31,D=24,Dv=3)
aot_grad_v2(sink_empty_rows ${cg} --variant sink_empty_rows --shape B=2,H=4,Hkv=2,Lq=40,Lk=23,D=16,Dv=8)
aot_grad_v2(everything ${cg} --variant everything --shape B=2,H=4,Hkv=2,Lq=37,Lk=41,D=18,Dv=8)
set(cgg ${PROJECT_SOURCE_DIR}/tests/cgen/v2_grad.attn)
aot_grad_v2(sink_expr ${cgg} --variant sink_expr --shape B=2,H=6,Hkv=2,Lq=21,Lk=26,D=10,Dv=3)
aot_grad_v2(mixed ${cgg} --variant mixed --shape B=2,H=6,Hkv=2,Lq=21,Lk=26,D=10,Dv=3 --int-range qpos=0,300
            --int-range kvpos=0,300 --param c=0.7)
aot_grad_v2(sink_fault ${cg} --variant sink_fault --expect-fault --param off=1
            --shape B=1,H=4,Hkv=2,Lq=10,Lk=13,D=16,Dv=8)
aot_grad_v2(qpos_fault ${cg} --variant qpos_fault --expect-fault --param off=1
            --shape B=1,H=4,Hkv=2,Lq=10,Lk=13,D=16,Dv=8)
set(dots ${PROJECT_SOURCE_DIR}/tests/v2/dots.attn) # dot(Q, K): the rows' gradients are dQ's and dK's terms
aot_grad_v2(dots-qk-score ${dots} --variant qk_score --shape B=2,H=4,Hkv=2,Lq=21,Lk=26,D=10,Dv=3)
aot_grad_v2(dots-qk-bias ${dots} --variant qk_bias_rotary --shape B=2,H=6,Hkv=3,Lq=17,Lk=23,D=12,Dv=4)
aot_grad_v2(dots-lowrank ${dots} --variant rows_lowrank --shape B=2,H=4,Hkv=1,Lq=23,Lk=19,D=9,Dv=4 --param R=5)
aot_grad_v2(dims_odd ${cg} --variant dims_odd --expect-fault --param n=5 --shape B=1,H=4,Hkv=2,Lq=10,Lk=13,D=16,Dv=8)
if(ATTNC_VALGRIND AND NOT ATTNC_SANITIZE) # valgrind cannot run a sanitized program
  set(work ${CMAKE_CURRENT_BINARY_DIR}/aot-grad/v2-everything-valgrind)
  file(MAKE_DIRECTORY ${work})
  # the generated code's memory use (the glue's cc and attnc run outside valgrind's children: not traced)
  add_test(NAME grad/v2/everything/aot-valgrind COMMAND ${ATTNC_VALGRIND} --error-exitcode=9 --leak-check=full
           --errors-for-leak-kinds=definite $<TARGET_FILE:test_grad_aot> ${cg} $<TARGET_FILE:attnc> cc ${work}
           --variant everything --shape B=1,H=4,Hkv=2,Lq=19,Lk=23,D=10,Dv=3)
endif()
