# tests/v2.cmake — dot(Q, K) and dots of two tensor rows on the compiled backends (issue 14 item 3; they become
# sums over Q's and K's rows as tensors, middle/rows_table.h): every attention of tests/v2/dots.attn (dot(Q, K) in
# score, weight and bias clauses, with rotary, GQA, Lq != Lk, odd D, fully masked rows; two tensor rows as low-rank
# columns, per element and inside a sum) against the interpreter, forward and backward; their runtime errors with
# the interpreter's message; ahead of time (forward: cgen_every; backward: grad/v2/dots-*/aot-*, grad_backends.cmake).
set(dots ${PROJECT_SOURCE_DIR}/tests/v2/dots.attn)
add_test(NAME v2-dots/interp COMMAND test_examples ${dots} --backend interp)
add_test(NAME grad/interp-fd/v2-dots COMMAND test_grad_interp ${dots} --samples ${ATTNC_GRAD_SAMPLES})
set(dots_backends refplan)
set(dots_grad_backends refplan)
if(ATTNC_HAVE_TCC_JIT)
  list(APPEND dots_backends tcc cuda-emu)
  list(APPEND dots_grad_backends tcc)
endif()
if(ATTNC_HAVE_LLVM_BACKEND)
  list(APPEND dots_backends llvm)
  list(APPEND dots_grad_backends llvm)
endif()
foreach(backend ${dots_backends})
  add_test(NAME v2-dots/${backend} COMMAND test_examples ${dots} --backend ${backend} --threads 2)
endforeach()
foreach(backend ${dots_grad_backends})
  add_test(NAME grad/v2-dots/${backend} COMMAND test_grad_backends ${dots} --backend ${backend})
  if(ATTNC_SANITIZE AND NOT backend STREQUAL "refplan")
    continue() # the JIT backends' 16-bit and [B, L, H, D] kernels: code the sanitizers do not see (~45 s there)
  endif()
  add_test(NAME grad/v2-dots/${backend}-bf16-blhd COMMAND test_grad_backends ${dots} --backend ${backend}
           --elem bf16 --layout blhd --tile 8)
  add_test(NAME grad/v2-dots/${backend}-f16 COMMAND test_grad_backends ${dots} --backend ${backend} --elem f16
           --tile 32)
endforeach()
if(ATTNC_HAVE_TCC_JIT) # cgen_every: tests/cgen.cmake
  set(shape --shape B=1,H=2,Hkv=1,Lq=12,Lk=10,D=4,Dv=3)
  cgen_every(v2_dots_lowrank ${dots} --variant rows_lowrank --shape B=2,H=4,Hkv=1,Lq=23,Lk=19,D=9,Dv=4 --param R=5
             --tile 8x16)
  cgen_every(v2_dots_elementwise ${dots} --variant rows_elementwise --shape B=1,H=4,Hkv=2,Lq=24,Lk=17,D=11,Dv=6)
  # dot(Q, K) and dot(K, Q): the float32 rows (rotated) bound as rows(Q)/rows(K), ahead of time too
  cgen_every(v2_dots_qk_score ${dots} --variant qk_score --shape B=2,H=4,Hkv=2,Lq=21,Lk=26,D=10,Dv=3)
  cgen_every(v2_dots_qk_weight ${dots} --variant qk_weight --shape B=1,H=2,Hkv=1,Lq=30,Lk=19,D=7,Dv=5)
  cgen_every(v2_dots_qk_bias ${dots} --variant qk_bias_rotary --shape B=2,H=6,Hkv=3,Lq=17,Lk=23,D=12,Dv=4)
  cgen_every(v2_dots_index_fault ${dots} --variant rows_fault ${shape} --param off=1 --expect-fault)
  cgen_every(v2_dots_index_lazy ${dots} --variant rows_fault ${shape} --param off=1 --param guard=1)
  # rows of different lengths: the library's per-call check; ahead-of-time C has none, its sum runs over the
  # longer row and reads past the shorter one's end: a runtime error where a kept element reads it
  foreach(backend ${dots_backends})
    add_test(NAME cgen/${backend}/v2_dots_lengths COMMAND test_cgen ${dots} --variant rows_fault ${shape}
             --param n=2 --param off=1 --param guard=1 --expect-fault --threads 2 --backend ${backend})
  endforeach()
  foreach(n 2 4)
    set(work ${CMAKE_CURRENT_BINARY_DIR}/aot/v2_dots_lengths_${n})
    file(MAKE_DIRECTORY ${work})
    add_test(NAME cgen/aot/v2_dots_lengths_${n} COMMAND test_cgen ${dots} --variant rows_fault ${shape} --param n=${n}
             --param off=1 --param guard=1 --expect-fault --aot $<TARGET_FILE:attnc> cc ${work})
  endforeach()
endif()
