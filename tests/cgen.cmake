# tests/cgen.cmake — the C emitter (backends/c/c_emit.c) beyond the examples:
# the libtcc backend on shapes with odd L, Lq != Lk, GQA, D = 40, Dv != D,
# fully masked rows, small tiles and 1 or 2 threads; the same generated C
# compiled ahead of time by the system C compiler (cc -O2 -std=c99) and
# called through its documented entry point; the JIT's own error paths.
# Every comparison is against the reference interpreter (tests/test_cgen.c).
if(ATTNC_HAVE_TCC_JIT)
  add_executable(test_cgen ${PROJECT_SOURCE_DIR}/tests/test_cgen.c ${PROJECT_SOURCE_DIR}/tests/layouts.c)
  target_compile_options(test_cgen PRIVATE ${ATTNC_WARNINGS})
  target_include_directories(test_cgen PRIVATE ${PROJECT_SOURCE_DIR}/base)
  target_link_libraries(test_cgen PRIVATE attnc_test_support ${CMAKE_DL_LIBS} Threads::Threads)
  add_test(NAME cgen/unit COMMAND test_cgen --unit)

  # cgen_case(NAME AOT|JIT SPEC ARGS...): tcc on 1 and 2 threads; with AOT
  # also ahead of time through `attnc emit --target c` and cc.
  function(cgen_case name mode spec)
    add_test(NAME cgen/tcc/${name}/threads1 COMMAND test_cgen ${spec} ${ARGN} --threads 1 --backend tcc)
    add_test(NAME cgen/tcc/${name}/threads2 COMMAND test_cgen ${spec} ${ARGN} --threads 2 --backend tcc)
    add_test(NAME cgen/cuda-emu/${name} COMMAND test_cgen ${spec} ${ARGN} --threads 2 --backend cuda-emu)
    # the sanitizer build: tcc above runs the same C emitter in-process; ahead of time adds `attnc emit`'s entry
    # point and cc's compile, which it sees in a few cases (CI's 30 minutes)
    if(mode STREQUAL "AOT" AND (NOT ATTNC_SANITIZE OR name MATCHES "^(causal_br_gqa|low_rank|fault_oob_index|nested_sums)$"))
      set(work ${CMAKE_CURRENT_BINARY_DIR}/aot/${name})
      file(MAKE_DIRECTORY ${work})
      add_test(NAME cgen/aot/${name} COMMAND test_cgen ${spec} ${ARGN} --aot $<TARGET_FILE:attnc> cc ${work})
      if(NOT name MATCHES "^(causal_br_gqa|low_rank|fault_oob_index|nested_sums)$") # -O2: those four (CI's time)
        set_tests_properties(cgen/aot/${name} PROPERTIES ENVIRONMENT ATTNC_AOT_OPT=-O0)
      endif()
    endif()
  endfunction()

  set(ex ${PROJECT_SOURCE_DIR}/examples)
  set(own ${PROJECT_SOURCE_DIR}/tests/cgen/variants.attn)

  # layout_case(NAME SPEC ARGS... AOT LAYOUTS...): tcc and cuda-emu with each
  # layout of tests/layouts.c (f16 / bf16 Q, K, V, O; [B,L,H,D]; slices of a
  # fused QKV buffer; gaps between the rows of every tensor, O and LSE
  # included), and ahead of time with the layouts after AOT.  Shapes keep
  # Lq == Lk and D == Dv, which the fused buffer needs.
  set(all_layouts f16 bf16 blhd blhd_bf16 fused fused_f16 gaps gaps_mixed)
  function(layout_case name spec)
    list(FIND ARGN AOT at)
    list(SUBLIST ARGN 0 ${at} args)
    math(EXPR after "${at} + 1")
    set(aot_layouts "")
    list(LENGTH ARGN count)
    if(after LESS count)
      list(SUBLIST ARGN ${after} -1 aot_layouts)
    endif()
    foreach(layout ${all_layouts})
      add_test(NAME cgen/layout/tcc/${name}/${layout} COMMAND test_cgen ${spec} ${args} --threads 2 --backend tcc
               --layout ${layout})
      add_test(NAME cgen/layout/cuda-emu/${name}/${layout} COMMAND test_cgen ${spec} ${args} --threads 2
               --backend cuda-emu --layout ${layout})
    endforeach()
    foreach(layout ${aot_layouts})
      set(work ${CMAKE_CURRENT_BINARY_DIR}/aot/layout-${name}-${layout})
      file(MAKE_DIRECTORY ${work})
      add_test(NAME cgen/layout/aot/${name}/${layout} COMMAND test_cgen ${spec} ${args} --layout ${layout}
               --aot $<TARGET_FILE:attnc> cc ${work})
    endforeach()
  endfunction()
  layout_case(causal ${ex}/causal.attn --variant causal_top_left --shape B=2,H=4,Hkv=2,Lq=67,Lk=67,D=24,Dv=24
              --tile 16x32 AOT blhd_bf16 gaps_mixed fused_f16)
  # version 2: rotary (interleaved, partial), tables of Q and K rows and a sink together
  layout_case(v2_everything ${PROJECT_SOURCE_DIR}/tests/cgen/v2.attn --variant everything
              --shape B=2,H=4,Hkv=2,Lq=37,Lk=37,D=18,Dv=18 AOT blhd_bf16 gaps_mixed fused_f16)
  layout_case(alibi ${ex}/alibi.attn --variant alibi_causal --shape B=1,H=4,Hkv=1,Lq=50,Lk=50,D=20,Dv=20 AOT)
  layout_case(low_rank ${ex}/low_rank_bias.attn --variant flashbias_low_rank --param rank=5
              --shape B=2,H=2,Hkv=2,Lq=45,Lk=45,D=16,Dv=16 --tile 16x16 AOT gaps_mixed)
  layout_case(document ${ex}/document.attn --variant document_causal --int-range doc=0,4
              --shape B=2,H=4,Hkv=4,Lq=37,Lk=37,D=16,Dv=16 --tile 16x16 AOT blhd_bf16)
  layout_case(softcap ${ex}/softcap.attn --variant softcap_causal --param cap=1.5
              --shape B=2,H=4,Hkv=2,Lq=48,Lk=48,D=16,Dv=16 AOT)
  layout_case(sigmoid_weight ${ex}/sigmoid.attn --variant sigmoid_causal
              --shape B=1,H=4,Hkv=4,Lq=48,Lk=48,D=16,Dv=16 --tile 16x16 AOT gaps)
  # ahead of time: a mask, a tensor bias, a low-rank sum, a weight clause,
  # a -D specialised param, an int tensor, nested sums
  cgen_case(causal_br_gqa AOT ${ex}/causal.attn --variant causal_bottom_right_aligned
            --shape B=2,H=6,Hkv=2,Lq=50,Lk=37,D=40,Dv=24 --masked-rows)
  cgen_case(t5_relative AOT ${ex}/relative_bias_1d.attn --variant t5_relative
            --shape B=1,H=4,Hkv=2,Lq=70,Lk=90,D=40,Dv=12 --param buckets=16 --param max_dist=32)
  cgen_case(low_rank AOT ${ex}/low_rank_bias.attn --variant flashbias_low_rank
            --shape B=2,H=4,Hkv=2,Lq=67,Lk=131,D=40,Dv=24 --param rank=5 --tile 32x16)
  cgen_case(relu_masked_rows AOT ${own} --variant relu_bottom_right
            --shape B=1,H=4,Hkv=2,Lq=45,Lk=30,D=40,Dv=12 --masked-rows --tile 16x16)
  cgen_case(window_fixed AOT ${ex}/sliding_window.attn --variant sliding_window_causal -D window=7
            --shape B=1,H=3,Hkv=1,Lq=77,Lk=77,D=24,Dv=40 --tile 16x16)
  cgen_case(document AOT ${ex}/document.attn --variant document_causal
            --shape B=2,H=4,Hkv=4,Lq=97,Lk=97,D=40,Dv=8 --int-range doc=0,5 --tile 16x32)
  cgen_case(nested_sums AOT ${own} --variant nested_sums
            --shape B=1,H=2,Hkv=2,Lq=33,Lk=47,D=40,Dv=8 --param R=4)
  cgen_case(alibi_long JIT ${ex}/alibi.attn --variant alibi_causal
            --shape B=1,H=4,Hkv=1,Lq=129,Lk=129,D=40,Dv=72)
  cgen_case(sigmoid JIT ${ex}/sigmoid.attn --variant sigmoid_causal
            --shape B=1,H=4,Hkv=2,Lq=65,Lk=65,D=40,Dv=20)
  cgen_case(row_bias JIT ${own} --variant row_bias
            --shape B=2,H=2,Hkv=1,Lq=41,Lk=41,D=40,Dv=16 --tile 16x16)
  cgen_case(int_edges JIT ${own} --variant int_edges
            --shape B=1,H=2,Hkv=1,Lq=29,Lk=35,D=40,Dv=8 --tile 8x8)
  # runtime errors of the spec: the interpreter's message (tcc), status 1 (ahead of time)
  cgen_case(fault_oob_index AOT ${own} --variant oob_index --expect-fault
            --shape B=1,H=2,Hkv=1,Lq=20,Lk=20,D=8,Dv=8 --tile 8x8)
  cgen_case(fault_div_zero AOT ${own} --variant div_zero --expect-fault
            --shape B=1,H=2,Hkv=2,Lq=17,Lk=23,D=8,Dv=8)
  # every attention of every example, ahead of time, on its example-args shape.  The sanitizer build: causal and
  # the v2 examples (c_emit_v2.c's code around the kernel is in the ahead-of-time text only); the compiled code is
  # cc's, which they do not see, and the v1 kernels' text is the tcc backend's, which cgen/tcc runs in-process
  # (the representative set here took ~50 s of that build's CPU; CI's 30 minutes)
  file(GLOB examples CONFIGURE_DEPENDS ${ex}/v2/*.attn)
  set(aot_examples ${ATTNC_CHECKED_EXAMPLES})
  if(ATTNC_SANITIZE)
    set(aot_examples ${ex}/causal.attn)
  endif()
  foreach(file ${aot_examples} ${examples})
    get_filename_component(base ${file} NAME_WE)
    file(STRINGS ${file} arg_lines REGEX "^// example-args")
    file(STRINGS ${file} attention_lines REGEX "^attention ")
    foreach(line ${arg_lines})
      if(line MATCHES "^// example-args\\[([A-Za-z_0-9]+)\\]: (.*)$")
        set(variant ${CMAKE_MATCH_1})
        set(args ${CMAKE_MATCH_2})
      elseif(line MATCHES "^// example-args: (.*)$")
        set(args ${CMAKE_MATCH_1})
        list(GET attention_lines 0 first)
        string(REGEX REPLACE "^attention ([A-Za-z_0-9]+).*" "\\1" variant "${first}")
      else()
        continue()
      endif()
      separate_arguments(args UNIX_COMMAND "${args}")
      set(work ${CMAKE_CURRENT_BINARY_DIR}/aot/example-${variant})
      file(MAKE_DIRECTORY ${work})
      add_test(NAME cgen/aot/example/${base}/${variant}
               COMMAND test_cgen ${file} --variant ${variant} ${args} --aot $<TARGET_FILE:attnc> cc ${work})
      # cc -O0 outside the representative set and the v2 examples (-O2 took ~1.7x as long as -O1, -O1 ~1.8x as
      # long as -O0: ~150 s of CI's CPU over every example and case; what the optimiser could expose in the
      # emitted C (and -Wall's maybe-uninitialized, which needs it), the representative set still meets at -O2)
      if(NOT file IN_LIST ATTNC_REPRESENTATIVE_EXAMPLES AND NOT file IN_LIST examples)
        set_tests_properties(cgen/aot/example/${base}/${variant} PROPERTIES ENVIRONMENT ATTNC_AOT_OPT=-O0)
      endif()
    endforeach()
  endforeach()

  # cgen_every(NAME SPEC ARGS...): one case on every backend against the
  # interpreter: tcc, cuda-emu and ahead of time (cgen_case), llvm (when built)
  # and refplan.
  function(cgen_every name spec)
    cgen_case(${name} AOT ${spec} ${ARGN})
    add_test(NAME cgen/refplan/${name} COMMAND test_cgen ${spec} ${ARGN} --threads 2 --backend refplan)
    if(ATTNC_HAVE_LLVM_BACKEND)
      add_test(NAME cgen/llvm/${name} COMMAND test_cgen ${spec} ${ARGN} --threads 2 --backend llvm)
    endif()
  endfunction()
  # cgen_emit_cuda(NAME SPEC): `attnc emit --target cuda` of every attention of
  # SPEC (no nvcc needed), and the same through nvcc when there is one (else skipped).
  function(cgen_emit_cuda name spec)
    add_test(NAME cgen/cuda-emit/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_emit.sh $<TARGET_FILE:attnc>
             ${CMAKE_CURRENT_BINARY_DIR}/cuda/cgen-emit/${name} "" ${spec})
    if(ATTNC_SANITIZE) # CI's 30 minutes: cgen/cuda-emit runs attnc's part; the compile is nvcc's
      return()
    endif()
    add_test(NAME cgen/cuda-nvcc/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cuda_emit.sh $<TARGET_FILE:attnc>
             ${CMAKE_CURRENT_BINARY_DIR}/cuda/cgen-nvcc/${name} require ${spec})
    set_tests_properties(cgen/cuda-nvcc/${name} PROPERTIES SKIP_RETURN_CODE 77)
  endfunction()

  # issue 8, bug 1: a `?:` whose condition reads the score, with an int / or %
  # by a call-time divisor in a branch (the fault check reads the score)
  set(sel ${PROJECT_SOURCE_DIR}/tests/cgen/score_select.attn)
  set(sel_shape B=2,H=4,Hkv=2,Lq=37,Lk=41,D=16,Dv=8)
  cgen_emit_cuda(score_select ${sel})
  # version 2 (tests/cgen/v2.attn): sinks on emptied rows, runtime errors of
  # sinks, positions and dims, everything at once with D not a power of two
  set(v2 ${PROJECT_SOURCE_DIR}/tests/cgen/v2.attn)
  cgen_every(v2_sink_empty_rows ${v2} --variant sink_empty_rows --shape B=2,H=4,Hkv=2,Lq=40,Lk=23,D=16,Dv=8 --tile 16x16)
  cgen_every(v2_sink_fault ${v2} --variant sink_fault --param off=1 --expect-fault --shape B=1,H=4,Hkv=2,Lq=10,Lk=13,D=16,Dv=8)
  cgen_every(v2_qpos_fault ${v2} --variant qpos_fault --param off=1 --expect-fault --shape B=1,H=4,Hkv=2,Lq=10,Lk=13,D=16,Dv=8)
  cgen_every(v2_dims_odd ${v2} --variant dims_odd --param n=5 --expect-fault --shape B=1,H=4,Hkv=2,Lq=10,Lk=13,D=16,Dv=8)
  cgen_every(v2_everything ${v2} --variant everything --shape B=2,H=4,Hkv=2,Lq=37,Lk=41,D=18,Dv=8 --tile 16x32)
  cgen_every(select_mod ${sel} --variant score_mod --shape ${sel_shape} --param p=2 --tile 16x16)
  cgen_every(select_mod_negative ${sel} --variant score_mod --shape ${sel_shape} --param p=-3)
  cgen_every(select_mod_fixed ${sel} --variant score_mod --shape ${sel_shape} -D p=3 --tile 16x32)
  # issue 15 item 4: each row's band of keys (middle/pass_band.c) on PARTIAL
  # tiles (refplan and the LLVM kernel skip the keys outside it): 48-row
  # tiles (an odd count of row vectors, one pair of them alone), Lq != Lk,
  # rows that keep nothing, per-head widths, abs() windows
  set(ex ${PROJECT_SOURCE_DIR}/examples)
  cgen_every(band_window ${ex}/sliding_window.attn --variant sliding_window_causal --param window=37
             --shape B=1,H=3,Hkv=1,Lq=157,Lk=190,D=24,Dv=40 --tile 48x16)
  cgen_every(band_window_64 ${ex}/sliding_window.attn --variant sliding_window_causal --param window=37
             --shape B=1,H=2,Hkv=1,Lq=190,Lk=157,D=24,Dv=40 --tile 64x64)
  if(NOT ATTNC_SANITIZE) # CI's 30 minutes: the sanitizer build runs the two above
  cgen_every(band_bottom_right ${ex}/causal.attn --variant causal_bottom_right_aligned
             --shape B=1,H=2,Hkv=2,Lq=150,Lk=60,D=16,Dv=8 --tile 48x32 --masked-rows)
  cgen_every(band_moa ${ex}/per_head_window.attn --variant moa_window --int-range window=1,24
             --shape B=2,H=4,Hkv=2,Lq=101,Lk=77,D=16,Dv=8 --tile 48x16 --masked-rows)
  cgen_every(band_dilated ${ex}/dilated_sliding_window.attn --variant dilated_sliding_window --param window=12 --param dilation=3
             --shape B=1,H=4,Hkv=2,Lq=141,Lk=157,D=16,Dv=8 --tile 48x32)
  endif()
  cgen_every(select_weight_div ${sel} --variant weight_div --shape ${sel_shape} --param p=3 --tile 16x16)
  cgen_every(select_nested ${sel} --variant nested_selects --shape ${sel_shape} --param p=3)
  cgen_every(select_let ${sel} --variant let_reads_score --shape ${sel_shape} --param p=4 --tile 32x16)
  cgen_every(select_lazy_zero ${sel} --variant lazy_div_zero --shape ${sel_shape})
  cgen_every(select_fault_mod ${sel} --variant score_mod --shape ${sel_shape} --param p=0 --expect-fault)
  cgen_every(select_fault_weight ${sel} --variant weight_div --shape ${sel_shape} --param p=0 --expect-fault)
  cgen_every(select_fault_eager ${sel} --variant eager_div_zero --shape ${sel_shape} --expect-fault)
  cgen_every(select_in_sum ${sel} --variant sum_select --shape ${sel_shape} --param p=3 --tile 16x16)
  cgen_every(select_index ${sel} --variant index_select --shape ${sel_shape} --param p=0)
  cgen_every(select_fault_index ${sel} --variant index_select --shape ${sel_shape} --param p=5 --expect-fault)

  # issue 8, bug 2: zero-trip sums and low-rank groups with no column in this call
  set(zt ${PROJECT_SOURCE_DIR}/tests/cgen/zero_trip.attn)
  set(zt_shape B=2,H=4,Hkv=2,Lq=36,Lk=41,D=16,Dv=8)
  cgen_emit_cuda(zero_trip ${zt})
  cgen_every(lowrank_r0 ${zt} --variant lowrank_param --shape ${zt_shape} --param R=0)
  cgen_every(lowrank_r0_tiles ${zt} --variant lowrank_param --shape ${zt_shape} --param R=0 --tile 16x16)
  cgen_every(lowrank_r3 ${zt} --variant lowrank_param --shape ${zt_shape} --param R=3 --tile 16x16)
  cgen_every(lowrank_r0_fixed ${zt} --variant lowrank_param --shape ${zt_shape} -D R=0)
  cgen_every(lowrank_lq36 ${zt} --variant lowrank_size --shape ${zt_shape} --tile 16x16)
  cgen_every(lowrank_lq38 ${zt} --variant lowrank_size --shape B=1,H=2,Hkv=1,Lq=38,Lk=38,D=16,Dv=8)
  cgen_every(lowrank_weight_r0 ${zt} --variant lowrank_weight --shape ${zt_shape} --param R=0 --tile 16x16)
  cgen_every(lowrank_groups_000 ${zt} --variant lowrank_groups --shape ${zt_shape}
             --param R1=0 --param R2=0 --param R3=0)
  cgen_every(lowrank_groups_030 ${zt} --variant lowrank_groups --shape ${zt_shape}
             --param R1=0 --param R2=3 --param R3=0 --tile 16x16)
  cgen_every(lowrank_groups_2n2 ${zt} --variant lowrank_groups --shape ${zt_shape}
             --param R1=2 --param R2=-1 --param R3=2)
  cgen_every(plain_sums_r0 ${zt} --variant plain_sums --shape ${zt_shape} --param R=0 --tile 16x16)
  cgen_every(plain_sums_negative ${zt} --variant plain_sums --shape ${zt_shape} --param R=-3)

  # issue 9, item 2: nested and sibling sums (the LLVM backend hoisted, out of
  # a sum's loop, what reads the variable of a sum nested in its body)
  set(ns ${PROJECT_SOURCE_DIR}/tests/cgen/nested_sums.attn)
  set(ns_shape B=2,H=3,Hkv=1,Lq=37,Lk=29,D=8,Dv=6)
  cgen_emit_cuda(nested_sums ${ns})
  cgen_every(nested_issue ${ns} --variant issue --shape ${ns_shape})
  cgen_every(nested_issue_tiles ${ns} --variant issue --shape B=1,H=2,Hkv=2,Lq=20,Lk=33,D=5,Dv=3 --tile 16x16)
  cgen_every(nested_call ${ns} --variant call_level --shape ${ns_shape} --param R=3 --tile 16x16)
  cgen_every(nested_call_zero ${ns} --variant call_level --shape ${ns_shape} --param R=2 --param S=0)
  cgen_every(nested_call_fixed ${ns} --variant call_level --shape ${ns_shape} -D R=3 -D S=-1)
  cgen_every(nested_head ${ns} --variant head_level --shape ${ns_shape} --param R=3)
  cgen_every(nested_row ${ns} --variant row_level --shape ${ns_shape} --param R=3 --tile 16x16)
  cgen_every(nested_col ${ns} --variant col_level --shape ${ns_shape} --param R=3 --tile 16x16)
  cgen_every(nested_elem ${ns} --variant elem_level --shape ${ns_shape} --param R=3 --tile 16x16)
  cgen_every(nested_elem_zero ${ns} --variant elem_level --shape ${ns_shape} --param R=0)
  cgen_every(nested_lowrank ${ns} --variant lowrank_nested --shape ${ns_shape} --param R=3 --tile 16x16)
  cgen_every(nested_lowrank_zero ${ns} --variant lowrank_nested --shape ${ns_shape} --param R=0)
  cgen_every(nested_siblings ${ns} --variant siblings --shape ${ns_shape} --param R=4 --tile 16x16)
  cgen_every(nested_siblings_zero ${ns} --variant siblings --shape ${ns_shape} --param R=0)
  cgen_every(nested_clauses ${ns} --variant clauses --shape ${ns_shape} --param R=3 --tile 16x16)
  cgen_every(nested_clauses_zero ${ns} --variant clauses --shape ${ns_shape} --param R=-2)
  cgen_every(nested_select ${ns} --variant select_branch --shape ${ns_shape} --param R=3 --tile 16x16)
  cgen_every(nested_deep ${ns} --variant deep --shape ${ns_shape} --param R=3 --tile 16x16)
  cgen_every(nested_deep_zero ${ns} --variant deep --shape ${ns_shape} --param R=0)
  cgen_every(nested_fault ${ns} --variant fault --shape ${ns_shape} --expect-fault)
  # the LLVM backend's other vector widths (AVX2, 4 lanes), on the shapes that nest most
  if(ATTNC_HAVE_LLVM_BACKEND)
    foreach(width 4 8)
      foreach(variant deep siblings lowrank_nested clauses select_branch)
        add_test(NAME cgen/llvm/nested_${variant}/width${width}
                 COMMAND test_cgen ${ns} --variant ${variant} --shape ${ns_shape} --param R=3 --tile 16x16 --backend llvm)
        set_tests_properties(cgen/llvm/nested_${variant}/width${width} PROPERTIES ENVIRONMENT ATTNC_LLVM_VECTOR_WIDTH=${width})
      endforeach()
    endforeach()
  endif()
  # issue 9: the helpers of templates/support.h no example calls
  set(hp ${PROJECT_SOURCE_DIR}/tests/cgen/helpers.attn)
  set(hp_shape B=2,H=4,Hkv=2,Lq=37,Lk=41,D=16,Dv=8)
  cgen_emit_cuda(helpers ${hp})
  cgen_every(helper_sign_fmod ${hp} --variant helper_sign_fmod --shape ${hp_shape} --tile 16x16)
  cgen_every(helper_nan ${hp} --variant helper_nan --shape ${hp_shape})

  # degenerate shapes: a single key, a single query, D = Dv = 1
  cgen_case(tiny JIT ${ex}/alibi.attn --variant alibi_bidirectional --shape B=1,H=1,Hkv=1,Lq=1,Lk=1,D=1,Dv=1)
  cgen_case(one_key JIT ${ex}/causal.attn --variant causal_bottom_right_aligned
            --shape B=3,H=2,Hkv=1,Lq=9,Lk=1,D=3,Dv=5 --masked-rows)
endif()
