#!/usr/bin/env bash
# On the GPU machine: unpack the carried runtime (.device/runtime.tar.xz, made HERE by
# tools/gpu/make_runtime.sh) at PREFIX/rt, link this machine's NVIDIA driver and CUDA 13
# libraries into PREFIX/rt/cuda (the only files of this machine the runtime loads), and write
# PREFIX/env.sh. Nothing is compiled; nothing of this machine's userland (glibc, libstdc++,
# Python) is used by Caffe's processes.
#
# Usage: tools/gpu/use_runtime.sh [--prefix /opt/co2fi] [--runtime .device/runtime.tar.xz]
# The CUDA libraries are looked for, in order, in $CUDA_HOME/lib64, /usr/local/cuda/lib64,
# /usr/local/cuda-13*/lib64, the same folders' lib/, the nvidia/ wheels of python3 (PyTorch's), then ldconfig's cache;
# the driver (libcuda.so.1, libnvidia-*.so*) in /usr/local/nvidia/lib64, ldconfig's cache and
# /usr/lib/x86_64-linux-gnu. With no driver (no GPU: make gpu-rehearse) it says so and goes on.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
prefix=/opt/co2fi
runtime=$repo/.device/runtime.tar.xz
die() { echo "use_runtime: error: $*" >&2; exit 1; }
say() { echo "use_runtime: $*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    -h|--help) sed -n "2,/^set -euo/p" "$0" | sed '$ d'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -f "$runtime" ] || die "no runtime at $runtime (tools/gpu/make_runtime.sh makes it here)"
rt=$prefix/rt
t0=$(date +%s)
rm -rf "$rt" && mkdir -p "$prefix"
tar -C "$prefix" -xJf "$runtime" || die "cannot unpack $runtime into $prefix"
[ -x "$rt/python/bin/python3" ] && [ -f "$rt/lib/ld-linux-x86-64.so.2" ] || die "$runtime is not a runtime"
want=$(cat "$rt/RT_PATH" 2>/dev/null || echo "$rt")
[ "$want" = "$rt" ] || die "the runtime was made for $want (make_runtime.sh --rt), not $rt"

# ---- This machine's CUDA libraries and driver ------------------------------------------------
mkdir -p "$rt/cuda"
nv_py=""
if command -v python3 >/dev/null; then
  nv_py=$(python3 -c "import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))" 2>/dev/null || true)
fi
cuda_dirs=("${CUDA_HOME:-/nonexistent}/lib64" /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/local/cuda/lib
  /usr/local/cuda-13*/lib)
[ -n "$nv_py" ] && cuda_dirs+=("$nv_py"/nvidia/cu13/lib "$nv_py"/nvidia/*/lib)
find_lib() {  # find_lib SONAME DIR...: the first DIR/SONAME, else ldconfig's
  local so=$1 d; shift
  for d in "$@"; do [ -e "$d/$so" ] && { echo "$d/$so"; return; }; done
  ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s {print $NF; exit}'
}
# cuBLAS loads cuBLASLt of the same major version (a dependency of the library, not of Caffe).
needed=$(cat "$rt/cuda-needed.txt"; sed -n 's/^libcublas\.so\.\([0-9]*\)$/libcublasLt.so.\1/p' "$rt/cuda-needed.txt")
missing=()
while read -r so; do
  [ -n "$so" ] || continue
  f=$(find_lib "$so" "${cuda_dirs[@]}")
  if [ -n "$f" ]; then ln -sfn "$(readlink -f "$f")" "$rt/cuda/$so"; say "$so: $f"
  else missing+=("$so"); fi
done < <(sort -u <<< "$needed")
[ ${#missing[@]} = 0 ] || die "CUDA libraries not found on this machine: ${missing[*]} (looked in ${cuda_dirs[*]} and ldconfig)"
drv=$(find_lib libcuda.so.1 /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64)
if [ -n "$drv" ]; then
  ddir=$(dirname "$(readlink -f "$drv")")
  ln -sfn "$(readlink -f "$drv")" "$rt/cuda/libcuda.so.1"
  # What libcuda loads by name (the PTX JIT compiler, ...), from the driver's own folder.
  for f in "$ddir"/libnvidia-*.so.*; do [ -e "$f" ] && ln -sfn "$f" "$rt/cuda/$(basename "$f")"; done
  say "driver: $drv"
else
  say "no NVIDIA driver (libcuda.so.1) on this machine: CUDA calls will fail (a rehearsal)"
fi

# ---- env.sh ----------------------------------------------------------------------------------
cat > "$prefix/env.sh" <<EOF
# Source this before running Caffe (pycaffe or caffe): the carried runtime (tools/gpu/use_runtime.sh).
export CO2FI_ROOT=$prefix CO2FI_CAFFE_PREFIX=$rt/caffe CO2FI_RUNTIME=$rt
export CO2FI_HOST_PYTHON=\${CO2FI_HOST_PYTHON:-$(command -v python3 || true)}
export PYTHONPATH=$rt/caffe/python:$repo
export PYTHONNOUSERSITE=1
export LD_LIBRARY_PATH=$rt/cuda
export PATH=$rt/python/bin:$rt/caffe/bin:\$PATH
export GLOG_minloglevel=\${GLOG_minloglevel:-1}
EOF
# The carried interpreter and pycaffe load here, from nothing but the runtime.
# shellcheck disable=SC1091
(source "$prefix/env.sh" && python3 -c "import sys, numpy, google.protobuf, caffe; print('use_runtime: python', sys.version.split()[0], 'at', sys.executable, '| numpy', numpy.__version__, '| caffe', caffe.__version__)") \
  || die "the runtime's python3 cannot import caffe here"
say "runtime ready at $rt in $(( $(date +%s) - t0 )) s; source $prefix/env.sh"
