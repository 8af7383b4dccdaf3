# tests/grid.cmake — multi-dimensional tiles (docs/multidim-tiles.md): every
# grid attention of the examples on grids that divide into the blocks, run
# in block order by every backend that has the block-order kernel (llvm, tcc,
# refplan) against the interpreter (tests/grid_diff.sh also checks that the
# call does use it); element types, layouts, threads, tile shapes; grids that
# do not divide (2-D, and 3-D with 6 planes for blocks 4 deep) and Lq != Lk
# (the 1-D plan runs).  The tile maps themselves
# are checked against brute force in middle-end/tiles (tests/test_tiles.c).
set(grid_backends refplan)
if(ATTNC_HAVE_TCC_JIT)
  string(APPEND grid_backends ",tcc")
endif()
if(ATTNC_HAVE_LLVM_BACKEND)
  string(APPEND grid_backends ",llvm")
endif()
set(ex ${PROJECT_SOURCE_DIR}/examples)
set(grid_shape B=2,H=4,Hkv=2,Lq=256,Lk=256,D=16,Dv=8)
function(grid_test name uses file variant)
  # CI's 30 minutes: the sanitizer build runs three of these (its JIT code is invisible to ASan anyway)
  if(ATTNC_SANITIZE AND NOT name MATCHES "^(na2d|na3d|na2d_ragged)$")
    return()
  endif()
  add_test(NAME grid/${name} COMMAND bash ${PROJECT_SOURCE_DIR}/tests/grid_diff.sh $<TARGET_FILE:attnc>
           ${grid_backends} ${uses} ${file} ${variant} ${ARGN})
endfunction()
grid_test(na2d 1 ${ex}/neighborhood_2d.attn na2d --shape ${grid_shape} --param width=16 --param kernel=5)
grid_test(na2d_f16_blhd 1 ${ex}/neighborhood_2d.attn na2d --shape ${grid_shape} --param width=16 --param kernel=5
          --dtype f16 --layout blhd)
# float32 K and V whose rows lie apart, GQA: llvm reads them in place through the row map (AttnCall.kv_rows)
grid_test(na2d_f32_blhd 1 ${ex}/neighborhood_2d.attn na2d --shape ${grid_shape} --param width=16 --param kernel=5
          --layout blhd --threads 2)
grid_test(na2d_bf16_threads 1 ${ex}/neighborhood_2d.attn na2d --shape ${grid_shape} --param width=16 --param kernel=7
          --dtype bf16 --threads 3)
grid_test(na2d_tiles_32x32 1 ${ex}/neighborhood_2d.attn na2d --shape ${grid_shape} --param width=16 --param kernel=5
          --tile 32x32)
grid_test(na2d_tiles_16x64 1 ${ex}/neighborhood_2d.attn na2d --shape B=1,H=2,Hkv=1,Lq=512,Lk=512,D=16,Dv=8
          --param width=32 --param kernel=7 --tile 16x64)
grid_test(na2d_dilated 1 ${ex}/neighborhood_2d.attn na2d_dilated --shape ${grid_shape} --param width=16
          --param kernel=3 --param dilation=2)
grid_test(gna2d 1 ${ex}/neighborhood_2d.attn gna2d --shape ${grid_shape} --param width=16 --param kernel=4
          --param stride=2)
# Dv a multiple of 16: the LLVM kernel holds O as rows (docs/multidim-tiles.md, item 7): blocks of 4 vectors of
# dv and one left over (Dv = 80), none whole (Dv = 16), 16-bit V through the conversion (bf16, blhd)
grid_test(na2d_o_rows 1 ${ex}/neighborhood_2d.attn na2d --shape B=2,H=4,Hkv=2,Lq=256,Lk=256,D=32,Dv=80
          --param width=16 --param kernel=5 --threads 2)
grid_test(na2d_o_rows_dv16 1 ${ex}/neighborhood_2d.attn na2d --shape B=1,H=2,Hkv=1,Lq=256,Lk=256,D=16,Dv=16
          --param width=16 --param kernel=7)
grid_test(na3d_o_rows_bf16 1 ${ex}/neighborhood_3d.attn na3d --shape B=1,H=2,Hkv=1,Lq=512,Lk=512,D=16,Dv=64
          --param width=8 --param height=8 --param kernel_t=3 --param kernel_y=3 --param kernel_x=3 --dtype bf16
          --layout blhd)
grid_test(na3d 1 ${ex}/neighborhood_3d.attn na3d --shape ${grid_shape} --param width=8 --param height=8
          --param kernel_t=3 --param kernel_y=3 --param kernel_x=3)
grid_test(na3d_causal_t 1 ${ex}/neighborhood_3d.attn na3d_causal_t --shape ${grid_shape} --param width=8
          --param height=8 --param kernel_t=2 --param kernel_y=3 --param kernel_x=3)
grid_test(swin_window 1 ${ex}/window_2d.attn swin_window --shape ${grid_shape} --param width=16 --param win=4)
grid_test(swin_shifted_window 1 ${ex}/window_2d.attn swin_shifted_window --shape ${grid_shape} --param width=16
          --param win=4 --param shift=2)
grid_test(swin_window_rpb - ${ex}/relative_bias_2d.attn swin_window_rpb --shape ${grid_shape} --param width=16
          --param win=4)
grid_test(nat_rpb - ${ex}/relative_bias_2d.attn nat_rpb --shape ${grid_shape} --param width=16 --param kernel=5)
grid_test(halo2d 1 ${ex}/halo.attn halo2d --shape ${grid_shape} --param width=16 --param block=4 --param halo=2)
grid_test(axial_union 1 ${ex}/axial.attn axial_union --shape ${grid_shape} --param width=16)
grid_test(axial_per_head 1 ${ex}/axial.attn axial_per_head --shape ${grid_shape} --param width=16)
grid_test(crossformer_lda 1 ${ex}/crossformer_lda.attn crossformer_lda --shape ${grid_shape} --param width=16
          --param interval=4)
grid_test(natten2d 1 ${PROJECT_SOURCE_DIR}/bench/variants/natten2d.attn natten2d --shape ${grid_shape}
          --param width=16)
# live keys of PARTIAL tiles (docs/middle-end.md) ordered by the LLVM kernel's loop (vector widths below 16; at 16
# on AVX-512 hosts, compressing instructions): natten2d 7 x 7 and NAT's table (grid tables read by key)
if(ATTNC_HAVE_LLVM_BACKEND AND NOT ATTNC_SANITIZE)
  grid_test(natten2d_w8 1 ${PROJECT_SOURCE_DIR}/bench/variants/natten2d.attn natten2d --shape ${grid_shape}
            --param width=16)
  grid_test(nat_rpb_w8 - ${ex}/relative_bias_2d.attn nat_rpb --shape ${grid_shape} --param width=16 --param kernel=5)
  set_tests_properties(grid/natten2d_w8 grid/nat_rpb_w8 PROPERTIES ENVIRONMENT ATTNC_LLVM_VECTOR_WIDTH=8)
endif()
# clauses the 1-D plan rewrites (a band of keys, a Toeplitz term) on block-order rows
grid_test(grid_band 1 ${PROJECT_SOURCE_DIR}/tests/grid_cases.attn grid_band --shape B=1,H=2,Hkv=1,Lq=128,Lk=128,D=8,Dv=8)
grid_test(grid_toeplitz 1 ${PROJECT_SOURCE_DIR}/tests/grid_cases.attn grid_toeplitz
          --shape B=1,H=2,Hkv=1,Lq=128,Lk=128,D=8,Dv=8)
# the 1-D plan: a grid that does not divide into the q tile's 4 x 4 blocks (three axes: 4 x 2 x 2, and 5 planes),
# keys that are not the queries' grid
grid_test(na2d_ragged 0 ${ex}/neighborhood_2d.attn na2d --shape B=1,H=2,Hkv=1,Lq=100,Lk=100,D=16,Dv=8
          --param width=10 --param kernel=5)
grid_test(na3d_planes_ragged 0 ${ex}/neighborhood_3d.attn na3d --shape B=1,H=2,Hkv=1,Lq=320,Lk=320,D=16,Dv=8
          --param width=8 --param height=8 --param kernel_t=3 --param kernel_y=3 --param kernel_x=3)
grid_test(halo2d_cross 0 ${ex}/halo.attn halo2d --shape B=1,H=2,Hkv=1,Lq=256,Lk=512,D=16,Dv=8 --param width=16
          --param block=4 --param halo=2)
# a runtime error in block order: the interpreter's message (original rows), nothing written
add_test(NAME grid/fault COMMAND bash ${PROJECT_SOURCE_DIR}/tests/grid_fault.sh $<TARGET_FILE:attnc>
         $<TARGET_FILE:npyrand> ${grid_backends})
