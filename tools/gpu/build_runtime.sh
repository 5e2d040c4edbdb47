#!/usr/bin/env bash
# `make gpu-runtime`: .device/runtime.tar.xz, the runtime the GPU call carries (docs/GPU.md).
#
# 1. In the rehearsal chroot (tools/gpu/rehearse_chroot.sh: Debian 13, static python3.12, CUDA
#    13 from this machine's nvcc and PyPI's cuBLAS/cuRAND, no GPU), from a fresh clone of HEAD,
#    tools/gpu/device_build.sh builds our CUDA Caffe exactly as it would on the GPU machine
#    (sm_90 + PTX; CO2FI_CUDA_COMPILE_ONLY=1). install_caffe.sh's cache in the chroot keeps the
#    build: 40 min on 2 shared cores the first time, about 2 min after.
# 2. tools/gpu/make_runtime.sh packs that build, its library closure and the Python.
# Needs root (the chroot) and this machine's pyenv 3.12 (the chroot's Python comes from it).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${CO2FI_CACHE:-$HOME/.cache/co2fi}
root=$cache/rehearse/trixie
die() { echo "build_runtime: error: $*" >&2; exit 1; }
launcher=${CO2FI_REHEARSE_PY312:-$(ls -d "$HOME"/.pyenv/versions/3.12* 2>/dev/null | tail -1 || true)}/bin/python3.12
[ -x "$launcher" ] || die "no pyenv Python 3.12 here ($launcher)"
CO2FI_REHEARSE_CARRY=.device "$repo/tools/gpu/rehearse_chroot.sh" -- 'export PATH=$PATH:/usr/local/cuda/bin
  mkdir -p /out/logs && CO2FI_CUDA_COMPILE_ONLY=1 OUT=/out/logs tools/gpu/device_build.sh \
    --prefix /opt/co2fi --cuda on --cuda-arch 90 --jobs "$(nproc)" --no-smoke' \
  || die "the CUDA build in the chroot failed (log: $cache/rehearse/out-trixie/logs/)"
prefix=$(sed -n 's/^export CO2FI_ROOT=[^ ]* CO2FI_CAFFE_PREFIX=\([^ ]*\).*/\1/p' "$root/opt/co2fi/env.sh")
[ -n "$prefix" ] && [ -f "$root$prefix/.complete" ] || die "no finished build named in $root/opt/co2fi/env.sh"
"$repo/tools/gpu/make_runtime.sh" --root "$root" --caffe "$prefix" \
  --python /opt/torch/.venv/bin/python --launcher "$launcher" --out "$repo/.device/runtime.tar.xz"
