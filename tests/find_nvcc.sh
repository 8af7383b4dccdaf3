# tests/find_nvcc.sh — sourced by the nvcc checks (tests/cuda_simt_nvcc.sh,
# tests/cuda_fa2_nvcc.sh): sets nvcc to $ATTNC_NVCC when set (empty: none),
# else nvcc on PATH, else /usr/local/cuda/bin/nvcc; exits 77 (ctest's skip)
# when there is none.
if [ -n "${ATTNC_NVCC+set}" ]; then
  nvcc=$ATTNC_NVCC
else
  nvcc=$(command -v nvcc || true)
  [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
fi
if [ -z "$nvcc" ]; then echo "nvcc not found: skipped"; exit 77; fi
