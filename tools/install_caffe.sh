#!/usr/bin/env bash
# Build BVLC Caffe + pycaffe for co2fi, reproducibly, into a cache outside the clone.
#
# Source: Debian's `caffe` source package (BVLC commit 99bd997 + Debian's patch series), fetched
# with apt-get through a private sources list and state directory, verified by sha256; or a BVLC
# checkout given as CAFFE_SRC=/path. Then the project's patches (caffe_patches/series), a CMake
# build, and an install into ~/.cache/co2fi/caffe-<key>/, where <key> hashes everything that goes
# into the build. The build runs in a temporary folder that is moved into place only when complete.
#
# Usage: tools/install_caffe.sh [--cuda auto|on|off] [--cuda-arch LIST] [--cudnn on|off]
#                               [--nccl auto|on|off]  (auto: on for CUDA builds; multi-GPU)
#                               [--python PY] [--venv DIR] [--jobs N] [--print-prefix] [--deps-only]
#                               [--source-only]   (patched + configured source tree; for C++ tests)
#                               [--deps-prefix DIR]
# Environment: CO2FI_CACHE (default ~/.cache/co2fi), CAFFE_SRC, CO2FI_CUDA, CO2FI_CUDA_ARCH,
#   CO2FI_CUDA_COMPILE_ONLY=1 (CUDA build on a machine with nvcc but no GPU: proves it compiles),
#   CO2FI_DEPS_PREFIX (= --deps-prefix DIR: the Debian packages are unpacked under DIR, e.g. by
#   tools/gpu/device_build.sh, instead of installed: no system-package check, CMake searches
#   DIR/usr first, DIR's library folders go into the RPATH), CO2FI_CMAKE_ARGS (extra CMake
#   arguments, appended last, part of the cache key).
# --cuda-arch / CO2FI_CUDA_ARCH: compute capabilities, separated by spaces or commas, e.g.
#   "70 75 80 86 89 90 +PTX" (Volta to Hopper) or "8.6,9.0+PTX". Each gets machine code (SASS);
#   "N+PTX" also embeds N's PTX, a lone "+PTX" the highest one's (newer cards JIT-compile it).
#   A single number alone means N+PTX, as before (default 90: sm_90 + compute_90).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CO2FI_CACHE:-$HOME/.cache/co2fi}
cuda=${CO2FI_CUDA:-auto}
cuda_arch=${CO2FI_CUDA_ARCH:-90}
cudnn=off
nccl=${CO2FI_NCCL:-auto}
python=""
venv=""
jobs=$(nproc)
print_prefix=0
deps_only=0
source_only=0
deps_prefix=${CO2FI_DEPS_PREFIX:-}

readonly DEB_VERSION="1.0.0+git20180821.99bd997-8"
readonly DEB_SUITE="bullseye"
readonly ORIG_TARBALL="caffe_1.0.0+git20180821.99bd997.orig.tar.gz"
readonly ORIG_SHA256="e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c"
# Bump when the layout of an installed build changes (what is copied where).
readonly LAYOUT_VERSION=2
readonly APT_MIRROR=${CO2FI_DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() { echo "install_caffe: error: $*" >&2; exit 1; }
log=/dev/null
fail() {
  echo "install_caffe: build failed ($1). Full log: $log" >&2
  echo "---- last lines of the log ----" >&2
  tail -n 40 "$log" >&2
  exit 1
}
trap 'echo "install_caffe: error: unexpected failure at line $LINENO: $BASH_COMMAND" >&2' ERR
say() { echo "install_caffe: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) cuda=$2; shift 2 ;;
    --cuda-arch) cuda_arch=$2; shift 2 ;;
    --cudnn) cudnn=$2; shift 2 ;;
    --nccl) nccl=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --venv) venv=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --print-prefix) print_prefix=1; shift ;;
    --deps-only) deps_only=1; shift ;;
    --source-only) source_only=1; shift ;;
    --deps-prefix) deps_prefix=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$cuda" in auto|on|off) ;; *) die "--cuda must be auto, on or off, not '$cuda'" ;; esac
case "$cudnn" in on|off) ;; *) die "--cudnn must be on or off, not '$cudnn'" ;; esac
case "$nccl" in auto|on|off) ;; *) die "--nccl must be auto, on or off, not '$nccl'" ;; esac
# The architecture list -> arch_bin (SASS), arch_ptx (PTX) and a canonical spelling for the key.
parse_cuda_arch() {
  local tok num t ptx_highest=0 ntok=0 bins=() ptx=()
  for tok in ${1//[,;]/ }; do
    ntok=$((ntok + 1))
    if [[ "$tok" =~ ^\+(PTX|ptx)$ ]]; then ptx_highest=1; continue; fi
    t=${tok%+[Pp][Tt][Xx]}
    num=${t/./}
    [[ "$num" =~ ^[1-9][0-9]{1,2}$ ]] \
      || die "--cuda-arch: '$tok' is not a compute capability such as 86, 8.6 or 90+PTX (in '$1')"
    bins+=("$num")
    [ "$t" != "$tok" ] && ptx+=("$num")
  done
  [ ${#bins[@]} -gt 0 ] || die "--cuda-arch: no architecture in '$1' (e.g. \"70 75 80 86 89 90 +PTX\")"
  mapfile -t arch_bin < <(printf '%s\n' "${bins[@]}" | sort -n -u)
  [ $ptx_highest = 1 ] && ptx+=("${arch_bin[-1]}")
  [ $ntok = 1 ] && [ ${#ptx[@]} = 0 ] && ptx=("${arch_bin[0]}")     # "90": sm_90 + compute_90
  arch_ptx=()
  [ ${#ptx[@]} -gt 0 ] && mapfile -t arch_ptx < <(printf '%s\n' "${ptx[@]}" | sort -n -u)
  # Canonical: "90" for the single-number form (the key of earlier builds), else "75 80 90+PTX".
  if [ ${#arch_bin[@]} = 1 ] && [ "${arch_ptx[*]}" = "${arch_bin[0]}" ]; then
    cuda_arch=${arch_bin[0]}
  else
    cuda_arch=""
    for num in "${arch_bin[@]}"; do
      [[ " ${arch_ptx[*]} " = *" $num "* ]] && num="$num+PTX"
      cuda_arch="${cuda_arch:+$cuda_arch }$num"
    done
  fi
}
parse_cuda_arch "$cuda_arch"

if [ -z "$python" ]; then
  if [ -n "$venv" ] && [ -x "$venv/bin/python" ]; then python=$venv/bin/python; else python=python3; fi
fi
command -v "$python" >/dev/null || die "no Python interpreter '$python'"

# ---- CUDA: auto means on when nvcc and a GPU are both present --------------------------------
nvcc_bin=$(command -v nvcc || true)
if [ "$cuda" = auto ]; then
  if [ -n "$nvcc_bin" ] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    cuda=on
  else
    cuda=off
  fi
fi
if [ "$cuda" = on ]; then
  [ -n "$nvcc_bin" ] || die "--cuda on needs nvcc on PATH"
  if ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; } \
      && [ "${CO2FI_CUDA_COMPILE_ONLY:-0}" != 1 ]; then
    die "--cuda on but no GPU is visible; set CO2FI_CUDA_COMPILE_ONLY=1 to build anyway"
  fi
  cuda_root=$(cd "$(dirname "$(readlink -f "$nvcc_bin")")/.." && pwd)
  # Each architecture must be one this nvcc knows (CUDA 13 dropped Volta, sm_70).
  if nvcc_archs=$("$nvcc_bin" --list-gpu-arch 2>/dev/null); then
    for a in "${arch_bin[@]}"; do
      grep -qx "compute_$a" <<< "$nvcc_archs" || die "--cuda-arch $a: nvcc $("$nvcc_bin" --version \
        | grep -o 'release [0-9.]*' | cut -d' ' -f2) cannot compile for sm_$a (it knows \
$(echo $nvcc_archs | sed 's/compute_//g')); drop $a from the list or use a CUDA toolkit that has it"
    done
  fi
  [ -f "$cuda_root/include/cuda_runtime.h" ] || cuda_root=/usr/local/cuda
fi
# NCCL (multi-GPU through pycaffe, co2fi_tools.multigpu): on for CUDA builds unless --nccl off.
[ "$nccl" = auto ] && { [ "$cuda" = on ] && nccl=on || nccl=off; }
[ "$nccl" = on ] && [ "$cuda" != on ] && die "--nccl on needs a CUDA build (--cuda on)"

# ---- System packages -------------------------------------------------------------------------
deb_packages=(build-essential cmake pkg-config dpkg-dev python3-dev python3-venv
  libboost-system-dev libboost-thread-dev
  libboost-filesystem-dev libboost-python-dev libprotobuf-dev protobuf-compiler
  libgoogle-glog-dev libgflags-dev libhdf5-dev libopenblas-dev liblmdb-dev graphviz)
missing=()
if [ -n "$deps_prefix" ]; then
  [ -d "$deps_prefix/usr/include" ] || die "--deps-prefix $deps_prefix has no usr/include"
  deps_prefix=$(cd "$deps_prefix" && pwd)
  say "using the packages unpacked under $deps_prefix (no system-package check)"
else
  for p in "${deb_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    # shellcheck disable=SC2086
    $cmd -qq >&2 || die "apt-get install failed: $cmd"
  else
    echo "install_caffe: missing system packages; as root run:" >&2
    echo "  sudo apt-get update && sudo $cmd" >&2
    exit 2
  fi
fi

[ "$deps_only" = 1 ] && { say "system packages present"; exit 0; }

# pycaffe's build needs numpy >= 2 headers: compiled against numpy 2 it loads under 1.x and 2.x.
np_version=$("$python" -c "import numpy; print(numpy.__version__)" 2>/dev/null) \
  || die "$python has no numpy; install it first (pip install -r requirements.txt)"
[ "${np_version%%.*}" -ge 2 ] || die "numpy $np_version in $python: pycaffe must be built against numpy >= 2"

# cuBLAS/cuRAND: the slim nvcc 13 toolkit on some machines lacks them; PyPI's wheels have them.
cuda_extra=""
if [ "$cuda" = on ] && [ ! -f "$cuda_root/include/cublas_v2.h" ]; then
  cuda_extra="$cache/cuda-extra"
  if [ ! -f "$cuda_extra/.done" ]; then
    say "CUDA toolkit at $cuda_root lacks cuBLAS/cuRAND: installing nvidia-cublas and nvidia-curand"
    rm -rf "$cuda_extra.tmp"
    "$python" -m pip install -q --target "$cuda_extra.tmp" nvidia-cublas nvidia-curand >&2 \
      || die "pip install nvidia-cublas nvidia-curand failed"
    rm -rf "$cuda_extra" && mv "$cuda_extra.tmp" "$cuda_extra" && touch "$cuda_extra/.done"
  fi
  # The wheels hold only versioned sonames; FindCUDA looks for libcublas.so / libcurand.so,
  # and the loader then for the sonames in the same folder (the RPATH points there).
  mkdir -p "$cuda_extra/lib"
  for so in "$cuda_extra"/nvidia/*/lib/*.so*; do ln -sfn "$so" "$cuda_extra/lib/$(basename "$so")"; done
  for lib in cublas cublasLt curand; do
    so=$(ls "$cuda_extra"/nvidia/*/lib/lib$lib.so.* 2>/dev/null | head -1)
    [ -n "$so" ] || die "no lib$lib.so.* in $cuda_extra (delete it to reinstall the wheels)"
    ln -sfn "$so" "$cuda_extra/lib/lib$lib.so"
  done
fi

# NCCL: the system's (nccl.h + libnccl.so, e.g. Debian's libnccl-dev) or PyPI's
# nvidia-nccl-cu<major> wheel for this nvcc, as cuBLAS above.
nccl_inc="" nccl_lib=""
if [ "$nccl" = on ]; then
  for d in "$cuda_root" /usr /usr/local; do
    if [ -f "$d/include/nccl.h" ]; then
      nccl_inc=$d/include
      nccl_lib=$(ls "$d"/lib*/libnccl.so "$d"/lib/*-linux-gnu/libnccl.so 2>/dev/null | head -1)
      [ -n "$nccl_lib" ] && break
    fi
  done
  if [ -z "$nccl_lib" ]; then
    cuda_major=$("$nvcc_bin" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
    [ -n "$cuda_major" ] || die "cannot read the CUDA version from $nvcc_bin --version"
    nccl_dir="$cache/nccl-cu$cuda_major"
    if [ ! -f "$nccl_dir/.done" ]; then
      say "no NCCL in the system: installing nvidia-nccl-cu$cuda_major (pip)"
      rm -rf "$nccl_dir.tmp"
      "$python" -m pip install -q --no-deps --target "$nccl_dir.tmp" "nvidia-nccl-cu$cuda_major" >&2 \
        || die "pip install nvidia-nccl-cu$cuda_major failed (or build with --nccl off)"
      rm -rf "$nccl_dir" && mv "$nccl_dir.tmp" "$nccl_dir" && touch "$nccl_dir/.done"
    fi
    nccl_inc="$nccl_dir/nvidia/nccl/include"
    so=$(ls "$nccl_dir"/nvidia/nccl/lib/libnccl.so.* 2>/dev/null | head -1)
    [ -f "$nccl_inc/nccl.h" ] && [ -n "$so" ] || die "no nccl.h / libnccl.so.* in $nccl_dir (delete it to reinstall)"
    ln -sfn "$so" "$nccl_dir/nvidia/nccl/lib/libnccl.so"  # the wheel holds only the soname
    nccl_lib="$nccl_dir/nvidia/nccl/lib/libnccl.so"
  fi
fi

# ---- Source ----------------------------------------------------------------------------------
mkdir -p "$cache/src" "$cache/logs"
fetch_debian_source() {
  local dir=$cache/src/debian-$DEB_VERSION
  if [ ! -f "$dir/.done" ]; then
    say "fetching Debian source package caffe=$DEB_VERSION ($DEB_SUITE)"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/apt/lists/partial" "$dir.tmp/apt/cache/archives/partial"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $APT_MIRROR $DEB_SUITE main" \
      > "$dir.tmp/apt/sources.list"
    local o=(-o "Dir::Etc::SourceList=$dir.tmp/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
             -o "Dir::State::Lists=$dir.tmp/apt/lists" -o "Dir::Cache=$dir.tmp/apt/cache"
             -o "APT::Sandbox::User=root")
    apt-get "${o[@]}" -qq update >&2 || die "apt-get update of the private $DEB_SUITE source list failed"
    (cd "$dir.tmp" && apt-get "${o[@]}" -qq source --download-only "caffe=$DEB_VERSION" >&2) \
      || die "apt-get source caffe=$DEB_VERSION failed"
    rm -rf "$dir.tmp/apt"
    mv "$dir.tmp" "$dir" && touch "$dir/.done"
  fi
  local got
  got=$(sha256sum "$dir/$ORIG_TARBALL" | cut -d' ' -f1)
  if [ "$got" != "$ORIG_SHA256" ]; then
    die "checksum mismatch for $dir/$ORIG_TARBALL: expected $ORIG_SHA256, got $got (delete $dir to fetch again)"
  fi
  echo "$dir"
}

if [ -n "${CAFFE_SRC:-}" ]; then
  [ -f "$CAFFE_SRC/CMakeLists.txt" ] && [ -d "$CAFFE_SRC/src/caffe" ] \
    || die "CAFFE_SRC=$CAFFE_SRC is not a BVLC Caffe checkout (no CMakeLists.txt or src/caffe)"
  if git -C "$CAFFE_SRC" rev-parse HEAD >/dev/null 2>&1; then
    src_id="git:$(git -C "$CAFFE_SRC" rev-parse HEAD):$(git -C "$CAFFE_SRC" status --porcelain | sha256sum | cut -c1-16)"
  else
    src_id="tree:$(cd "$CAFFE_SRC" && find . \( -name .git -o -name build \) -prune -o -type f -print0 \
      | sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-16)"
  fi
else
  deb_dir=$(fetch_debian_source)
  src_id="debian:$DEB_VERSION:$ORIG_SHA256:$(sha256sum "$deb_dir"/*.debian.tar.* | cut -c1-16)"
fi

# ---- The build recipe: CMake options (all but the install prefix) -----------------------------
extra_rpath=""
py_inc=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
py_lib=$("$python" -c "
import sysconfig, os
d, n = sysconfig.get_config_var('LIBDIR'), sysconfig.get_config_var('LDLIBRARY')
print(os.path.join(d, n) if d and n and os.path.exists(os.path.join(d, n)) else '')")
np_inc=$("$python" -c "import numpy; print(numpy.get_include())")

cmake_args=(-DCMAKE_BUILD_TYPE=Release
  -Dpython_version=3 -DPYTHON_EXECUTABLE="$("$python" -c 'import sys; print(sys.executable)')"
  -DPYTHON_INCLUDE_DIR="$py_inc" -DNUMPY_INCLUDE_DIR="$np_inc"
  -DBUILD_python=ON -DBUILD_python_layer=ON -DUSE_OPENCV=OFF -DUSE_LEVELDB=OFF -DUSE_LMDB=ON
  -DUSE_HDF5=ON -DBLAS=Open -DBUILD_docs=OFF -DBUILD_matlab=OFF -DUSE_NCCL=OFF)
[ -n "$py_lib" ] && cmake_args+=(-DPYTHON_LIBRARY="$py_lib")
if [ "$cuda" = on ]; then
  cmake_args+=(-DCPU_ONLY=OFF -DCUDA_TOOLKIT_ROOT_DIR="$cuda_root" -DCUDA_ARCH_NAME=Manual
    -DCUDA_ARCH_BIN="${arch_bin[*]}" -DCUDA_ARCH_PTX="${arch_ptx[*]}"
    -DUSE_CUDNN="$([ "$cudnn" = on ] && echo ON || echo OFF)")
  if [ -n "$cuda_extra" ]; then
    # FindCUDA resets CUDA_cublas_LIBRARY & co. on its first run, so give find_library a path.
    nv=$(find "$cuda_extra/nvidia" -maxdepth 2 -name include -type d | head -1)
    nvlib=$(dirname "$nv")/lib
    # libcublas.so needs libcublasLt.so.13 beside it: the linker must be told where it is.
    cmake_args+=(-DCMAKE_LIBRARY_PATH="$cuda_extra/lib"
      -DCMAKE_CXX_FLAGS="-I$nv" -DCUDA_NVCC_FLAGS="-I$nv"
      -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$nvlib"
      -DCMAKE_SHARED_LINKER_FLAGS="-Wl,-rpath-link,$nvlib")
    extra_rpath=";$nvlib"
  fi
  if [ "$nccl" = on ]; then
    cmake_args=("${cmake_args[@]/#-DUSE_NCCL=OFF/-DUSE_NCCL=ON}")
    cmake_args+=(-DNCCL_INCLUDE_DIR="$nccl_inc" -DNCCL_LIBRARIES="$nccl_lib")
    extra_rpath="$extra_rpath;$(dirname "$nccl_lib")"
  fi
else
  cmake_args+=(-DCPU_ONLY=ON)
fi
if [ -n "$deps_prefix" ]; then
  multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  cmake_args+=(-DCMAKE_PREFIX_PATH="$deps_prefix/usr")
  extra_rpath="$extra_rpath;$deps_prefix/usr/lib/$multiarch"
fi
if [ -n "${CO2FI_CMAKE_ARGS:-}" ]; then
  read -r -a extra_cmake_args <<< "$CO2FI_CMAKE_ARGS"
  cmake_args+=("${extra_cmake_args[@]}")
fi

# ---- Cache key: everything that goes into the build ------------------------------------------
py_id=$("$python" -c "import sys, numpy; print('%d.%d' % sys.version_info[:2], numpy.__version__.split('.')[0])")
toolchain="$(gcc -dumpfullversion) $(protoc --version) $(cmake --version | head -1)"
[ "$cuda" = on ] && toolchain="$toolchain $("$nvcc_bin" --version | tail -1)"
key=$( {
  echo "$src_id"; echo "python=$py_id"; echo "toolchain=$toolchain"
  echo "cuda=$cuda arch=$cuda_arch cudnn=$cudnn layout=$LAYOUT_VERSION"
  # Interpreter paths differ between clones (the venv lives in the clone); its identity is py_id.
  printf '%s\n' "${cmake_args[@]}" | grep -v -e '^-DPYTHON_EXECUTABLE=' -e '^-DNUMPY_INCLUDE_DIR='
  for p in $(cat "$repo/caffe_patches/series"); do cat "$repo/caffe_patches/$p"; done
} | sha256sum | cut -c1-16)
variant=cpu; [ "$cuda" = on ] && variant=cuda$(IFS=-; echo "${arch_bin[*]}")
prefix=$cache/caffe-$variant-$key

# Unpack the source into $1, apply our patches, configure with CMake in $1/build.
prepare_source() {
  local dest=$1
  if [ -n "${CAFFE_SRC:-}" ]; then
    cp -a "$CAFFE_SRC" "$dest"
  else
    (cd "$deb_dir" && dpkg-source --no-check -x caffe_"$DEB_VERSION".dsc "$dest") >>"$log" 2>&1 \
      || fail "dpkg-source could not unpack the Debian source package"
  fi
  for p in $(cat "$repo/caffe_patches/series"); do
    echo "== applying $p" >>"$log"
    patch -d "$dest" -p1 --forward < "$repo/caffe_patches/$p" >>"$log" 2>&1 || fail "patch $p does not apply"
  done
  echo "$src_id" > "$dest/.co2fi-source-id"
}
configure() {
  local dest=$1
  { echo "== cmake ${cmake_args[*]}"; } >>"$log"
  mkdir -p "$dest/build"
  (cd "$dest/build" && cmake "${cmake_args[@]}" ..) >>"$log" 2>&1 || fail "cmake configure"
}

link_venv() {
  [ -n "$venv" ] || return 0
  local site
  site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  # Only what differs is written: a read-only venv (a container run as the user) stays usable.
  [ "$(cat "$site/co2fi-pycaffe.pth" 2>/dev/null)" = "$prefix/python" ] \
    || echo "$prefix/python" > "$site/co2fi-pycaffe.pth"
  [ "$(readlink "$venv/caffe")" = "$prefix" ] || ln -sfn "$prefix" "$venv/caffe"
  say "pycaffe linked into $venv ($site/co2fi-pycaffe.pth)"
}

if [ "$print_prefix" = 1 ]; then
  echo "$prefix"
  if [ -f "$prefix/.complete" ]; then exit 0; else exit 1; fi
fi
if [ "$source_only" = 1 ]; then
  # A persistent, patched and configured tree (tools/caffe_cpp_tests.sh builds its tests there).
  gsrc=$cache/source-$variant-$key
  log=$cache/logs/source-$variant-$key.log
  if [ ! -f "$gsrc/.configured" ]; then
    rm -rf "$gsrc" "$gsrc.tmp"
    prepare_source "$gsrc.tmp"
    mv "$gsrc.tmp" "$gsrc"
    configure "$gsrc"
    touch "$gsrc/.configured"
  fi
  echo "$gsrc"
  exit 0
fi
if [ -f "$prefix/.complete" ]; then
  say "cached build: $prefix"
  link_venv
  echo "$prefix"
  exit 0
fi

# ---- Build -----------------------------------------------------------------------------------
exec 9>"$cache/.lock-$key"
flock 9
if [ -f "$prefix/.complete" ]; then link_venv; echo "$prefix"; exit 0; fi   # built while we waited

work=$(mktemp -d "$cache/build-$variant-$key.XXXXXX")
log=$cache/logs/build-$variant-$key-$(date +%Y%m%d-%H%M%S).log
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building Caffe ($variant, key $key) in $work; log: $log"
prepare_source "$work/src"
cmake_args+=(-DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_RPATH="$prefix/lib$extra_rpath")
configure "$work/src"
src=$work/src
say "compiling with $jobs jobs (a CPU build takes about 3 minutes on 2 cores)"
(cd "$src/build" && make -j"$jobs" caffe pycaffe caffe.bin) >>"$log" 2>&1 || fail "make"
(cd "$src/build" && make install DESTDIR="$work/stage") >>"$log" 2>&1 || fail "make install"

stage=$work/stage$prefix
# Layout: python/ holds the caffe package (CMake put it under lib/python3/dist-packages, and
# Caffe's scripts such as draw_net.py under python/: those go to share/caffe/python-scripts).
mkdir -p "$stage/share/caffe"
mv "$stage/python" "$stage/share/caffe/python-scripts"
mv "$stage/lib/python3/dist-packages" "$stage/python"
rmdir "$stage/lib/python3"
cp -a "$src/python/caffe/test" "$stage/python/caffe/test"      # pycaffe's own unit tests
# ... whose test_draw draws every prototxt of the source's models/ and examples/.
(cd "$src" && find models examples -name '*.prototxt' -exec cp --parents {} "$stage" \;)
cat > "$stage/co2fi-build.json" <<EOF
{"key": "$key", "variant": "$variant", "source": "$src_id", "python": "$py_id",
 "toolchain": "$toolchain", "cuda": "$cuda", "cuda_arch": "$cuda_arch", "cudnn": "$cudnn",
 "cuda_extra": "$cuda_extra", "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF
PYTHONPATH="$stage/python" "$python" -c "import caffe" >>"$log" 2>&1 \
  || PYTHONPATH="$stage/python" LD_LIBRARY_PATH="$stage/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$python" -c "import caffe" >>"$log" 2>&1 \
  || fail "the built pycaffe does not import"
touch "$stage/.complete"
rm -rf "$prefix"
mv "$stage" "$prefix"
say "installed $prefix"
link_venv
echo "$prefix"
