#!/usr/bin/env bash
# Rehearse the GPU machine's call HERE, in the userland of another Debian (`make gpu-rehearse`).
#
# The GPU machine (docs/GPU.md) runs Ubuntu 24.04: glibc 2.39, GCC 13/14's libstdc++, a venv of
# the distribution's STATIC python3.12 (/opt/torch/.venv) with numpy and protobuf, CUDA 13.0 at
# /usr/local/cuda-13.0 with cuBLAS and cuRAND in lib64. This script builds the nearest thing
# Debian's archive and PyPI give, without touching this machine's system:
#   - a debootstrapped Debian $SUITE (default trixie: glibc 2.41, g++ 14) in
#     $CO2FI_CACHE/rehearse/$SUITE, once;
#   - a static python3.12 linked there (see below) with its libpython3.12.so beside it, as
#     Ubuntu has, and /opt/torch/.venv of it: numpy, protobuf, six, opencv-python-headless
#     from PyPI (no torch);
#   - /usr/local/cuda-13.0 in it: this machine's toolkit (nvcc, cudart 13.0) with cuBLAS and
#     cuRAND from PyPI's CUDA 13 wheels laid over it (lib64, include), read-only;
#   - no GPU: no /dev/nvidia*, no libcuda, no nvidia-smi;
#   - a fresh clone of this repo's HEAD at /work/repo with the carried paths copied in
#     (CO2FI_REHEARSE_CARRY: .device/runtime.tar.xz when tools/gpu/make_runtime.sh made one,
#     else .device, tools/gpu/make_bundle.sh's output, made here first if missing).
# Then, in a private mount and PID namespace chrooted there, the GPU machine's exact command:
#   cd /work/repo && CO2FI_DEADLINE_S=470 OUT=/out bash tools/gpu/run_on_device.sh all
# (470 s as on the GPU machine once the CUDA build is in the chroot's cache, see step 3).
# $OUT comes back in $CO2FI_REHEARSE_OUT (default $CO2FI_CACHE/rehearse/out-$SUITE).
#
# Usage: tools/gpu/rehearse_chroot.sh [--suite trixie] [--shell] [-- CMD...]
#   --shell   an interactive shell in the prepared chroot instead of the command
#   -- CMD    run CMD (bash -c) in /work/repo instead of run_on_device.sh
# Needs root, debootstrap, network to Debian's archive and PyPI (the first time only).
# Environment: CO2FI_CACHE, CO2FI_DEADLINE_S (default 470, or 4800 while no CUDA build is
# cached), CO2FI_REHEARSE_KEEP_PREFIX=1 keeps all of /opt/co2fi (a warm machine), CO2FI_DEBIAN_MIRROR.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
suite=trixie
shell=0
cmd=""
die() { echo "rehearse_chroot: error: $*" >&2; exit 1; }
say() { echo "rehearse_chroot: [$(date +%H:%M:%S)] $*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite=$2; shift 2 ;;
    --shell) shell=1; shift ;;
    --) shift; cmd="$*"; break ;;
    -h|--help) sed -n "2,/^set -euo/p" "$0" | sed "$ d"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mounts, chroot)"
for tool in debootstrap unshare chroot git python3; do
  command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install debootstrap)"
done
cache=${CO2FI_CACHE:-$HOME/.cache/co2fi}
base=$cache/rehearse
root=$base/$suite
mirror=${CO2FI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
host_cuda=${CO2FI_HOST_CUDA:-/usr/local/cuda-13.0}
out=${CO2FI_REHEARSE_OUT:-$base/out-$suite}
[ -x "$host_cuda/bin/nvcc" ] || die "no nvcc in $host_cuda (CO2FI_HOST_CUDA): the build needs it"
mkdir -p "$base"

# ---- 1. The userland (once) ---------------------------------------------------------------
PACKAGES=gcc,g++,cmake,make,python3,python3-dev,python3-venv,python3-pip,xz-utils,git,ca-certificates,gdb,patch,file,binutils,procps
if [ ! -f "$root/.co2fi-base" ]; then
  say "debootstrap $suite into $root (once; a few minutes)"
  rm -rf "$root.tmp"
  debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$root.tmp" "$mirror" \
    > "$base/debootstrap-$suite.log" 2>&1 || die "debootstrap failed: $base/debootstrap-$suite.log"
  rm -rf "$root" && mv "$root.tmp" "$root"
  echo "$suite $PACKAGES" > "$root/.co2fi-base"
fi
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
# The GPU machine's interpreter is a STATIC python3.12 (the runtime linked into the executable,
# its symbols exported) with a libpython3.12.so beside it, which pycaffe links: two copies of
# the runtime in one process. Debian has no Python 3.12 (bookworm 3.11, trixie 3.13, which
# Boost.Python 1.74 cannot build for) and nothing can be downloaded from python.org, so the
# static interpreter is linked IN the chroot (its gcc, its glibc) from this machine's pyenv
# 3.12 build (libpython3.12.a + python.o), at the same path; its libpython3.12.so stays beside
# it, as Ubuntu's does.
pysrc=${CO2FI_REHEARSE_PY312:-$(ls -d "$HOME"/.pyenv/versions/3.12* 2>/dev/null | tail -1 || true)}
pycfg=$pysrc/lib/python3.12/config-3.12-x86_64-linux-gnu
[ -f "$pycfg/libpython3.12.a" ] && [ -f "$pycfg/python.o" ] \
  || die "no Python 3.12 build with libpython3.12.a and python.o (CO2FI_REHEARSE_PY312='$pysrc')"
venv=/opt/torch/.venv
if [ ! -f "$root/.co2fi-venv" ] || [ "$(cat "$root/.co2fi-venv")" != "$pysrc" ]; then
  say "static python3.12 in the chroot from $pysrc; $venv: numpy, protobuf, six, opencv-python-headless"
  rm -rf "$root$pysrc" && mkdir -p "$root$pysrc"
  tar -C "$pysrc" -cf - --exclude=./lib/python3.12/test --exclude=./lib/python3.12/site-packages \
    --exclude='__pycache__' . | tar -C "$root$pysrc" -xf -
  mkdir -p "$root$pysrc/lib/python3.12/site-packages"
  in_root gcc -o "$pysrc/bin/python3.12" "$pycfg/python.o" "$pycfg/libpython3.12.a" -ldl -lm \
    -lpthread -lutil -Xlinker -export-dynamic || die "linking a static python3.12 in the chroot failed"
  in_root /usr/bin/ldd "$pysrc/bin/python3.12" | grep -q libpython \
    && die "the chroot's python3.12 links libpython (it should be static)"
  # Wheels fetched here by this machine's pip (its certificates and index settings); installed
  # in the chroot with no network.
  pyw=$base/py312-wheels
  mkdir -p "$pyw"
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$pyw" numpy protobuf six opencv-python-headless \
    || die "pip download of the chroot's wheels failed"
  rm -rf "$root/tmp/wheels" "$root$venv" && cp -a "$pyw" "$root/tmp/wheels"
  in_root "$pysrc/bin/python3.12" -m venv "$venv" || die "venv failed in the chroot"
  in_root "$venv/bin/python" -m pip install -q --no-index \
    --find-links /tmp/wheels numpy protobuf six opencv-python-headless \
    || die "pip install in the chroot failed"
  rm -rf "$root/tmp/wheels"
  echo "$pysrc" > "$root/.co2fi-venv"
fi

# ---- 2. CUDA 13: this machine's nvcc + PyPI's cuBLAS/cuRAND as the toolkit's lib64 ----
wheels=$base/wheels
cudalay=$base/cuda13-wheels
if [ ! -f "$cudalay/.done" ]; then
  say "cuBLAS/cuRAND for CUDA 13 from PyPI (once; about 520 MB)"
  mkdir -p "$wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux2014_x86_64 -d "$wheels" nvidia-cublas nvidia-curand \
    || die "pip download of the CUDA 13 wheels failed"
  rm -rf "$cudalay.tmp" && mkdir -p "$cudalay.tmp/x" "$cudalay.tmp/lay/lib64" "$cudalay.tmp/lay/include"
  # cuBLAS and cuRAND only: cudart (and its headers) stay the toolkit's, as on the GPU machine.
  for w in "$wheels"/nvidia_cublas-*.whl "$wheels"/nvidia_curand-*.whl; do
    python3 -m zipfile -e "$w" "$cudalay.tmp/x" || die "cannot unpack $w"
  done
  for d in "$cudalay.tmp"/x/nvidia/*/lib "$cudalay.tmp"/x/nvidia/*/*/lib; do
    [ -d "$d" ] && cp -a "$d"/. "$cudalay.tmp/lay/lib64/"
  done
  for d in "$cudalay.tmp"/x/nvidia/*/include "$cudalay.tmp"/x/nvidia/*/*/include; do
    [ -d "$d" ] && cp -an "$d"/. "$cudalay.tmp/lay/include/"
  done
  (cd "$cudalay.tmp/lay/lib64" && for l in cublas cublasLt curand; do
     so=$(ls lib$l.so.* | head -1); [ -n "$so" ] || exit 1; ln -sfn "$so" lib$l.so; done) \
    || die "the CUDA 13 wheels lack cuBLAS or cuRAND"
  rm -rf "$cudalay.tmp/x" "$cudalay" && mv "$cudalay.tmp/lay" "$cudalay" && rm -rf "$cudalay.tmp"
  touch "$cudalay/.done"
fi

# ---- 3. A fresh clone with what the device tool carries ------------------------------------
if [ ! -f "$repo/.device/deps.tar.xz" ] && { [ ! -f "$repo/.device/runtime.tar.xz" ] \
    || [[ " ${CO2FI_REHEARSE_CARRY:-} " == *" .device "* ]]; }; then
  say "no .device bundle (and no runtime): tools/gpu/make_bundle.sh"
  "$repo/tools/gpu/make_bundle.sh" >&2 || die "make_bundle.sh failed"
fi
work=$root/work/repo
rm -rf "$root/work" && mkdir -p "$root/work"
git clone -q --no-hardlinks "$repo" "$work" || die "git clone of $repo failed"
say "fresh clone of $(git -C "$work" rev-parse --short HEAD) at /work/repo"
[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ] \
  && say "note: $repo has uncommitted changes; the clone has HEAD only"
# What the device tool carries: the runtime alone when there is one, else the bundle.
carry=${CO2FI_REHEARSE_CARRY:-}
if [ -z "$carry" ]; then
  if [ -f "$repo/.device/runtime.tar.xz" ]; then carry=.device/runtime.tar.xz; else carry=.device; fi
fi
for c in $carry; do
  mkdir -p "$work/$(dirname "$c")" && cp -a "$repo/$c" "$work/$c"
done
say "carried: $carry ($(du -sh --apparent-size "$work" --exclude=.git | cut -f1) with the tree)"
# A fresh machine each call, as the device tool's: /opt/co2fi goes, but for install_caffe.sh's
# cache of finished builds (keyed by every input), which spares the 10-40 min CUDA compile on 2
# cores after the first rehearsal; device_build.sh still runs every other step.
if [ "${CO2FI_REHEARSE_KEEP_PREFIX:-0}" != 1 ] && [ -d "$root/opt/co2fi" ]; then
  find "$root/opt/co2fi" -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} +
  rm -rf "$root/opt/co2fi/cache"/build-* "$root/opt/co2fi/cache/cuda-extra"
fi
cached=$(ls -d "$root"/opt/co2fi/cache/caffe-cuda90-*/.complete 2>/dev/null | head -1 || true)
rm -rf "$out" && mkdir -p "$out"

# ---- 4. The call: private mounts, no GPU, the GPU machine's command ------------------------
# The GPU machine's budget (470 s) when the build is cached; the first compile needs longer here.
if [ -n "${CO2FI_DEADLINE_S:-}" ]; then deadline=$CO2FI_DEADLINE_S
elif [ -n "$cached" ]; then deadline=470
else deadline=4800; say "no cached CUDA build in the chroot: the first rehearsal compiles it (deadline $deadline s)"
fi
[ -n "$cmd" ] || cmd="CO2FI_DEADLINE_S=$deadline bash tools/gpu/run_on_device.sh all"
[ "$shell" = 1 ] && cmd="exec bash -i"
ls /dev/nvidia* >/dev/null 2>&1 && say "note: this machine has /dev/nvidia*; the chroot does not"
say "running in $suite ($(in_root /usr/bin/ldd --version | head -1 | awk '{print $NF}') glibc, \
$(in_root "$venv/bin/python" --version)): $cmd"
t0=$(date +%s)
set +e
ROOT=$root HOST_CUDA=$host_cuda CUDALAY=$cudalay OUTDIR=$out CMD=$cmd VENV=$venv \
  unshare --mount --pid --fork --mount-proc bash -c '
set -euo pipefail
mount --make-rprivate /
mount -t proc proc "$ROOT/proc"
mount -t tmpfs tmpfs "$ROOT/dev"
for d in null zero full random urandom tty; do
  touch "$ROOT/dev/$d"; mount --bind "/dev/$d" "$ROOT/dev/$d"
done
mkdir -p "$ROOT/dev/shm" "$ROOT/dev/pts" && mount -t tmpfs tmpfs "$ROOT/dev/shm"
ln -s /proc/self/fd "$ROOT/dev/fd"
mount -t tmpfs tmpfs "$ROOT/tmp"
mkdir -p "$ROOT/usr/local/cuda-13.0" "$ROOT/out"
mount -t overlay overlay -o "lowerdir=$CUDALAY:$HOST_CUDA" "$ROOT/usr/local/cuda-13.0"
ln -sfn cuda-13.0 "$ROOT/usr/local/cuda"
mount --bind "$OUTDIR" "$ROOT/out"
exec chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=${TERM:-dumb} OUT=/out \
  PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  VIRTUAL_ENV="$VENV" bash -c "cd /work/repo && $CMD"
'
rc=$?
set -e
say "rc $rc in $(( $(date +%s) - t0 )) s; \$OUT: $out ($(ls "$out" | tr '\n' ' '))"
exit "$rc"
