#!/usr/bin/env bash
# Rehearse tools/gpu/device_build.sh HERE (Debian 12, root, no GPU) as the GPU machine would run
# it: inside a private mount namespace (unshare -m) where the system's copies of Caffe's
# dependencies are hidden (overlay whiteouts, a fresh ld.so.cache), with a Python 3.12 venv.
#
# Usage: tools/gpu/rehearse_local.sh [--cuda off|on] [--prefix DIR] [--python PY3.12]
#                                    [--exec 'CMD'] [-- ARGS]
#   --cuda off (default): the whole build + CPU smoke test against the bundle.
#   --cuda on: CO2FI_CUDA_COMPILE_ONLY=1, the CUDA build without a GPU (long on 2 cores).
# ARGS after -- go to device_build.sh (e.g. --no-smoke); --exec runs CMD (bash) in the namespace
# instead of device_build.sh, e.g. 'source DIR/env.sh && ldd ...'. Nothing outside it changes
# but DIR (default /tmp/co2fi-rehearsal) and OUT (default DIR/logs).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cuda=off
prefix=/tmp/co2fi-rehearsal
python=""
extra=()
exec_cmd=""
die() { echo "rehearse_local: error: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) cuda=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --exec) exec_cmd=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "needs root (mount namespace)"
command -v unshare >/dev/null || die "unshare not found"
if [ -z "$python" ]; then
  py312=$(ls "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1 || true)
  [ -n "$py312" ] || die "no Python 3.12 found; pass --python"
  venv=$prefix/venv312
  if [ ! -x "$venv/bin/python" ]; then
    "$py312" -m venv "$venv"
    "$venv/bin/pip" install -q numpy six protobuf || die "pip install into $venv failed"
  fi
  python=$venv/bin/python
fi
mkdir -p "$prefix"
export OUT=${OUT:-$prefix/logs}

hide_lib=(libboost_ libprotobuf libprotoc libglog libgflags libhdf5 libopenblas liblmdb libblas
  libcblas liblapack libgfortran libquadmath libunwind libsz libaec)
hide_inc=(boost google glog gflags hdf5 lmdb.h midl.h)
hide_bin=(protoc h5cc h5c++ h5fc)

ns_script=$(cat <<'EOF'
set -euo pipefail
ovl=$REH/ovl
rm -rf "$ovl" && mkdir -p "$ovl"
whiteout() {  # whiteout DIR NAME...: hide NAME entries of DIR via an overlay
  local dir=$1 key; shift
  key=$(echo "$dir" | tr / _)
  mkdir -p "$ovl/$key/up" "$ovl/$key/work"
  for pat in "$@"; do
    for f in "$dir"/$pat*; do
      [ -e "$f" ] || [ -L "$f" ] || continue
      mknod "$ovl/$key/up/$(basename "$f")" c 0 0
    done
  done
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$ovl/$key/up,workdir=$ovl/$key/work" "$dir"
}
whiteout /usr/lib/x86_64-linux-gnu $HIDE_LIB openblas-pthread hdf5 cmake
whiteout /usr/include $HIDE_INC
whiteout /usr/include/x86_64-linux-gnu openblas cblas f77blas
whiteout /usr/bin $HIDE_BIN
ldconfig -C "$ovl/ld.so.cache"
mount --bind "$ovl/ld.so.cache" /etc/ld.so.cache
echo "rehearse_local: hidden: $(ls /usr/include | grep -c -E '^(boost|google|glog)$' || true) of boost/google/glog headers visible, protoc: $(command -v protoc || echo none)"
[ -n "$EXEC_CMD" ] && exec bash -c "$EXEC_CMD"
exec "$REPO/tools/gpu/device_build.sh" "$@"
EOF
)
compile_only=0
[ "$cuda" = on ] && compile_only=1
REH=$prefix REPO=$repo EXEC_CMD=$exec_cmd HIDE_LIB="${hide_lib[*]}" HIDE_INC="${hide_inc[*]}" \
  HIDE_BIN="${hide_bin[*]}" CO2FI_CUDA_COMPILE_ONLY=$compile_only \
  unshare -m bash -c "$ns_script" rehearse --cuda "$cuda" --prefix "$prefix" --python "$python" \
  "${extra[@]}"
