# tests/llvm.cmake — the LLVM backend against the interpreter (tests/test_llvm.c):
# random shapes, error paths, emitted text, threads, compile/run/free cycles;
# the lowering as a translation of the schedule (tests/test_llvm_schedule.c);
# versions built on first use, once (tests/test_llvm_lazy.c);
# and the C API's optional pointers on every backend (tests/test_api_optional.c).
# The per-example LLVM runs are in tests/examples.cmake.
if(ATTNC_HAVE_LLVM_BACKEND)
  add_executable(test_llvm ${PROJECT_SOURCE_DIR}/tests/test_llvm.c)
  target_compile_options(test_llvm PRIVATE ${ATTNC_WARNINGS})
  target_link_libraries(test_llvm PRIVATE attnc_test_support Threads::Threads)
  if(NOT ATTNC_SANITIZE) # JIT code, invisible to the sanitizers; ~70 s there (fuzz/differential runs llvm too)
    add_test(NAME llvm/differential COMMAND test_llvm)
    set_tests_properties(llvm/differential PROPERTIES SKIP_RETURN_CODE 77)
  endif()
  # compile, run and free 10 kernels through a cache of 4 (evictions, recompiles; leaks show in the sanitizer
  # build): the cache's own size (32) took 44 compiles, ~40 s of CI's CPU
  add_test(NAME llvm/cache-cycles COMMAND test_llvm --cycles 10)
  set_tests_properties(llvm/cache-cycles PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT ATTNC_LLVM_IDLE_KERNELS=4)
  # a cache size not a count is refused by name (exit 3)
  add_test(NAME llvm/idle-kernels-refused COMMAND bash -c "set -u
    out=$(ATTNC_LLVM_IDLE_KERNELS=lots $0 bench $1 --variant causal_top_left --backend llvm --shape B=1,H=1,Lq=16,Lk=16,D=8 2>&1)
    [ $? = 3 ] && [ \"$out\" = \"attnc: ATTNC_LLVM_IDLE_KERNELS must be a count from 0 to 4096, not 'lots'\" ] || { echo \"$out\"; exit 1; }"
    $<TARGET_FILE:attnc> ${PROJECT_SOURCE_DIR}/examples/causal.attn)

  # The inline math (exp, exp2, log, log2, tanh, sigmoid, erf) element by
  # element against double libm, within the documented relative errors.
  add_executable(test_llvm_math ${PROJECT_SOURCE_DIR}/tests/test_llvm_math.c)
  target_compile_options(test_llvm_math PRIVATE ${ATTNC_WARNINGS})
  target_link_libraries(test_llvm_math PRIVATE attnc_test_support m)
  add_test(NAME llvm/math-accuracy COMMAND test_llvm_math)
  set_tests_properties(llvm/math-accuracy PROPERTIES SKIP_RETURN_CODE 77)

  # White box: the lowering translates the plan's schedule (a missing step is
  # refused, never recomputed) at the plan's vector width (issue 9, item 1).
  add_executable(test_llvm_schedule ${PROJECT_SOURCE_DIR}/tests/test_llvm_schedule.c)
  target_compile_options(test_llvm_schedule PRIVATE ${ATTNC_WARNINGS})
  target_include_directories(test_llvm_schedule SYSTEM PRIVATE ${ATTNC_LLVM_INCLUDE})
  target_link_libraries(test_llvm_schedule PRIVATE attnc_internal)
  add_test(NAME llvm/translates-schedule COMMAND test_llvm_schedule)

  # White box: a kernel's versions (decode, 16-bit storage) are built on
  # first use, once, when several threads call it at once.
  add_executable(test_llvm_lazy ${PROJECT_SOURCE_DIR}/tests/test_llvm_lazy.c)
  target_compile_options(test_llvm_lazy PRIVATE ${ATTNC_WARNINGS})
  target_include_directories(test_llvm_lazy SYSTEM PRIVATE ${ATTNC_LLVM_INCLUDE})
  target_link_libraries(test_llvm_lazy PRIVATE attnc_internal Threads::Threads m)
  add_test(NAME llvm/lazy-versions COMMAND test_llvm_lazy)
  set_tests_properties(llvm/lazy-versions PROPERTIES SKIP_RETURN_CODE 77)
endif()

# Every optional pointer of the C API (lse, params, tensors, err, opts, emit's
# call) on every backend this build runs (issue 8, bug 10: a NULL LSE crashed
# llvm kernels), and one kernel whose low-rank count changes per call.
add_executable(test_api_optional ${PROJECT_SOURCE_DIR}/tests/test_api_optional.c)
target_compile_options(test_api_optional PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(test_api_optional PRIVATE attnc_test_support)
add_test(NAME api/optional-pointers COMMAND test_api_optional)

# Issue 10: the LLVM kernel on f16/bf16 storage, [B, L, H, D], fused QKV
# slices and O/LSE with gaps, against the interpreter on the rounded inputs
# (tests/test_layouts_llvm.c), at 16-, 8- and 4-lane code.
if(ATTNC_HAVE_LLVM_BACKEND)
  add_executable(test_layouts_llvm ${PROJECT_SOURCE_DIR}/tests/test_layouts_llvm.c)
  target_compile_options(test_layouts_llvm PRIVATE ${ATTNC_WARNINGS})
  target_include_directories(test_layouts_llvm PRIVATE ${PROJECT_SOURCE_DIR}/base)
  target_link_libraries(test_layouts_llvm PRIVATE attnc_test_support m)
  if(ATTNC_SANITIZE) # JIT code the sanitizers do not see; the C that binds strides and element types: one case
    add_test(NAME llvm/layouts COMMAND test_layouts_llvm ${PROJECT_SOURCE_DIR}/examples --quick)
  else()
    add_test(NAME llvm/layouts COMMAND test_layouts_llvm ${PROJECT_SOURCE_DIR}/examples)
  endif()
  set_tests_properties(llvm/layouts PROPERTIES SKIP_RETURN_CODE 77)
endif()

# ATTNC_LLVM_PASSES (README, LLVM backend notes): a pipeline LLVM refuses is a compile error with LLVM's message
# (exit 3), a short one still computes what the interpreter does (the sanitizer half of scripts/test.sh uses it)
if(ATTNC_HAVE_LLVM_BACKEND)
  add_test(NAME llvm/passes COMMAND bash -c "set -u; a=$0; s=$1
    out=$(ATTNC_LLVM_PASSES='bogus<' $a bench $s --variant causal_top_left --backend llvm --shape B=1,H=1,Lq=16,Lk=16,D=8 2>&1)
    [ $? = 3 ] && [ \"$out\" = \"attnc: LLVM backend: optimisation failed: unknown pass name 'bogus<'\" ] || { echo \"$out\"; exit 1; }
    ATTNC_LLVM_PASSES='function(mem2reg)' $a diff $s --variant causal_top_left --backends llvm --shape B=1,H=2,Lq=33,Lk=40,D=12"
    $<TARGET_FILE:attnc> ${PROJECT_SOURCE_DIR}/examples/causal.attn)
  # ATTNC_LLVM_CODEGEN: the code generator's level; not 0..3 is refused by name (exit 3), 0 (LLVM's -O0, which the
  # sanitizer half uses) still computes what the interpreter does, f16 and decode versions too
  add_test(NAME llvm/codegen-level COMMAND bash -c "set -u; a=$0; s=$1
    out=$(ATTNC_LLVM_CODEGEN=4 $a bench $s --variant causal_top_left --backend llvm --shape B=1,H=1,Lq=16,Lk=16,D=8 2>&1)
    [ $? = 3 ] && [ \"$out\" = \"attnc: ATTNC_LLVM_CODEGEN must be 0, 1, 2 or 3, not '4'\" ] || { echo \"$out\"; exit 1; }
    for args in '--shape B=1,H=2,Lq=33,Lk=40,D=12' '--shape B=1,H=8,Hkv=2,Lq=1,Lk=70,D=12 --dtype f16'; do
      ATTNC_LLVM_CODEGEN=0 $a diff $s --variant causal_bottom_right_aligned --backends llvm $args || exit 1
    done" $<TARGET_FILE:attnc> ${PROJECT_SOURCE_DIR}/examples/causal.attn)
  # ATTNC_LLVM_PERF=1: kernels still compute what the interpreter does, and LLVM's perf listener writes a
  # jitdump file (magic 0x4A695444: "DTiJ" on this little-endian host) under $JITDUMPDIR for perf inject;
  # a value not 0 or 1 is refused by name
  add_test(NAME llvm/perf-jitdump COMMAND bash -c "set -u; a=$0; s=$1
    out=$(ATTNC_LLVM_PERF=yes $a bench $s --variant causal_top_left --backend llvm --shape B=1,H=1,Lq=16,Lk=16,D=8 2>&1)
    [ $? = 3 ] && [ \"$out\" = \"attnc: ATTNC_LLVM_PERF must be 0 or 1, not 'yes'\" ] || { echo \"$out\"; exit 1; }
    dir=$(mktemp -d) && trap 'rm -rf \"$dir\"' EXIT
    out=$(JITDUMPDIR=$dir ATTNC_LLVM_PERF=1 $a diff $s --variant causal_top_left --backends llvm --shape B=1,H=2,Lq=33,Lk=40,D=12 2>&1)
    st=$?
    case $out in *'without perf support'*) echo \"SKIP: $out\"; exit 77 ;; esac
    [ $st = 0 ] || { echo \"$out\"; exit 1; }
    f=$(find \"$dir\" -name 'jit-*.dump' -size +0 | head -n 1)
    [ -n \"$f\" ] && [ \"$(head -c 4 \"$f\")\" = DTiJ ] || { echo \"no jitdump file under $dir\"; exit 1; }"
    $<TARGET_FILE:attnc> ${PROJECT_SOURCE_DIR}/examples/causal.attn)
  set_tests_properties(llvm/perf-jitdump PROPERTIES SKIP_RETURN_CODE 77)
endif()

# Issue 11: decode shapes (8 query heads on 2 kv heads, packed into one work
# item per kv head; Lq 1, 2, 7, 16) of every example at 16-, 8- and 4-lane
# code against the interpreter (tests/test_llvm_decode.c).
if(ATTNC_HAVE_LLVM_BACKEND)
  add_executable(test_llvm_decode ${PROJECT_SOURCE_DIR}/tests/test_llvm_decode.c)
  target_compile_options(test_llvm_decode PRIVATE ${ATTNC_WARNINGS})
  target_link_libraries(test_llvm_decode PRIVATE attnc_test_support)
  # decode/<example>/llvm (tests/decode.cmake) runs every example at the host's width; the 16-, 8- and 4-lane code
  # here: the representative set (tests.cmake)
  set(ATTNC_DECODE_EXAMPLES ${ATTNC_REPRESENTATIVE_EXAMPLES})
  if(ATTNC_SANITIZE) # the kernels are JIT code; the host side (packing, splits) is alike for every example: three
    set(ATTNC_DECODE_EXAMPLES ${PROJECT_SOURCE_DIR}/examples/causal.attn ${PROJECT_SOURCE_DIR}/examples/document.attn
        ${PROJECT_SOURCE_DIR}/examples/low_rank_bias.attn)
  endif()
  foreach(example ${ATTNC_DECODE_EXAMPLES})
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME llvm/decode/${name} COMMAND test_llvm_decode ${example})
    set_tests_properties(llvm/decode/${name} PROPERTIES SKIP_RETURN_CODE 77)
  endforeach()
endif()

# Issue 12: the LLVM backward kernel (backends/llvm/llvm_grad.c) against the
# reference backward (tests/test_grad_backends.c): every example with D and
# Dv not multiples of the vector width, at the host's width and at 4 lanes;
# bf16 with tiles of 32; fully masked rows (bottom-right causal with
# Lq > Lk), GQA 4:1, odd sizes, f16; a long relative bias (several tiles of
# scatter-adds).  Determinism (1 and 3 threads) inside each run.
if(ATTNC_HAVE_LLVM_BACKEND)
  foreach(example ${ATTNC_CHECKED_EXAMPLES}) # every example; a representative set under the sanitizers (tests.cmake)
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME grad/${name}/llvm COMMAND test_grad_backends ${example} --backend llvm --shape D=12,Dv=5)
  endforeach()
  # 4 lanes and bf16 repeat the above at another width and element type: the representative set (tests.cmake)
  foreach(example ${ATTNC_REPRESENTATIVE_EXAMPLES})
    get_filename_component(name ${example} NAME_WE)
    add_test(NAME grad/${name}/llvm-w4 COMMAND test_grad_backends ${example} --backend llvm --shape D=13,Dv=6)
    set_tests_properties(grad/${name}/llvm-w4 PROPERTIES ENVIRONMENT ATTNC_LLVM_VECTOR_WIDTH=4)
    add_test(NAME grad/${name}/llvm-bf16 COMMAND test_grad_backends ${example} --backend llvm --elem bf16 --tile 32)
  endforeach()
  set(ex ${PROJECT_SOURCE_DIR}/examples)
  add_test(NAME grad/causal-masked-rows/llvm-f16 COMMAND test_grad_backends ${ex}/causal.attn --backend llvm
           --elem f16 --shape B=2,H=8,Hkv=2,Lq=37,Lk=21,D=7,Dv=3 --tile 8)
  add_test(NAME grad/relative_bias_1d-long/llvm COMMAND test_grad_backends ${ex}/relative_bias_1d.attn
           --backend llvm --shape Lq=71,Lk=90,D=20,Dv=9 --tile 16)
endif()

# Issue 10: f16 and bf16 conversions of the LLVM kernel, bit for bit against
# base/half.h (tests/test_llvm_f16.c): every 16-bit pattern through V and O,
# float32 edges and random patterns narrowed; with the host's F16C and with
# f16 converted in integer lanes (ATTNC_LLVM_SOFT_F16=1, a host without F16C),
# and the layouts test in integer lanes too.
if(ATTNC_HAVE_LLVM_BACKEND)
  add_executable(test_llvm_f16 ${PROJECT_SOURCE_DIR}/tests/test_llvm_f16.c)
  target_compile_options(test_llvm_f16 PRIVATE ${ATTNC_WARNINGS})
  target_include_directories(test_llvm_f16 PRIVATE ${PROJECT_SOURCE_DIR}/base)
  target_include_directories(test_llvm_f16 SYSTEM PRIVATE ${ATTNC_LLVM_INCLUDE})
  target_link_libraries(test_llvm_f16 PRIVATE attnc_internal m)
  add_test(NAME llvm/f16-conversions COMMAND test_llvm_f16)
  add_test(NAME llvm/f16-conversions-soft COMMAND test_llvm_f16 --expect-soft 1)
  set_tests_properties(llvm/f16-conversions-soft PROPERTIES ENVIRONMENT ATTNC_LLVM_SOFT_F16=1)
  # one case (--quick): the conversions in integer lanes are checked bit for bit above; llvm/layouts runs every
  # case with the host's conversions
  add_test(NAME llvm/layouts-soft-f16 COMMAND test_layouts_llvm ${PROJECT_SOURCE_DIR}/examples --quick)
  set_tests_properties(llvm/f16-conversions llvm/f16-conversions-soft llvm/layouts-soft-f16 PROPERTIES
                       SKIP_RETURN_CODE 77)
  set_tests_properties(llvm/layouts-soft-f16 PROPERTIES ENVIRONMENT ATTNC_LLVM_SOFT_F16=1)
endif()
