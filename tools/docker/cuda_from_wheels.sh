#!/usr/bin/env bash
# Inside an image build: a CUDA toolkit from PyPI wheels at /usr/local/cuda, when the base has no
# nvcc (e.g. plain Debian 12). nvcc, cudart, CCCL (Thrust), cuBLAS, cuRAND and cuobjdump of one
# CUDA release all land in <target>/nvidia/cu13 (the wheels' shared layout); the unversioned .so
# links that CMake's FindCUDA looks for are added, and the loader is told where the libraries are.
# Usage: tools/docker/cuda_from_wheels.sh PIP TARGET WHEEL...
set -euo pipefail
die() { echo "cuda_from_wheels: error: $*" >&2; exit 1; }
[ $# -ge 3 ] || die "usage: $0 PIP TARGET WHEEL..."
pip=$1 target=$2; shift 2
if command -v nvcc >/dev/null; then
  echo "cuda_from_wheels: the base has $(command -v nvcc) ($(nvcc --version | grep -o 'release [0-9.]*')): nothing to do"
  exit 0
fi
$pip install -q --no-cache-dir --target "$target" "$@" \
  || die "pip could not install the CUDA wheels ($*): is PyPI reachable from the build (--network host)?"
roots=("$target"/nvidia/cu*)
[ ${#roots[@]} = 1 ] && [ -x "${roots[0]}/bin/nvcc" ] || die "no nvidia/cu*/bin/nvcc under $target after installing $*"
root=${roots[0]}
[ -e "$root/lib64" ] || ln -s lib "$root/lib64"
for lib in cudart cublas cublasLt curand; do
  so=$(ls "$root"/lib/lib$lib.so.* 2>/dev/null | sort | head -1)
  [ -n "$so" ] || die "no lib$lib.so.* in $root/lib"
  ln -sfn "$(basename "$so")" "$root/lib/lib$lib.so"
done
ln -sfn "$root" /usr/local/cuda
echo "$root/lib" > /etc/ld.so.conf.d/co2fi-cuda.conf
ldconfig
echo "cuda_from_wheels: $root ($(/usr/local/cuda/bin/nvcc --version | grep -o 'release [0-9.]*'))"
