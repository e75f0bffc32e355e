#!/usr/bin/env bash
# Compiles cuda/nshap.cu (which includes one file per kernel) into one fatbin:
# SASS for sm_80/86/89/90 and PTX for compute_80. Without nvcc the build goes on without kernels.
set -euo pipefail
out="${1:?usage: build.sh OUTDIR}"
here="$(cd "$(dirname "$0")" && pwd)"
NVCC="$(command -v nvcc || true)"
[ -z "$NVCC" ] && [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ] && NVCC="$CUDA_HOME/bin/nvcc"
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ]; then
  echo "[nshap] nvcc not found: building without CUDA kernels (the CUDA backend will report that it has none)"
  exit 0
fi
if [ ! -f "$here/nshap.cu" ]; then
  echo "[nshap] no cuda/nshap.cu yet: nothing to compile"
  exit 0
fi
mkdir -p "$out"
tmp="$out/nshap.fatbin.tmp"
# Skip the compile when nothing changed since the last fatbin.
if [ -f "$out/nshap.fatbin" ] && [ -z "$(find "$here" \( -name '*.cu' -o -name '*.cuh' -o -name build.sh \) -newer "$out/nshap.fatbin" | head -1)" ]; then
  echo "[nshap] CUDA fatbin up to date"
  exit 0
fi
echo "[nshap] compiling CUDA kernels with $NVCC"
"$NVCC" -fatbin -O3 -std=c++17 \
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
  -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
  -gencode arch=compute_80,code=compute_80 \
  -o "$tmp" "$here/nshap.cu"
mv "$tmp" "$out/nshap.fatbin"
