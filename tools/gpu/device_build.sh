#!/usr/bin/env bash
# Build our Caffe with CUDA on the GPU machine from the carried bundle (.device/, made HERE by
# tools/gpu/make_bundle.sh), then smoke-test it. Runs ON the device, from the repo root.
#
#   1. unpacks .device/deps.tar.xz into $PREFIX/deps (Debian 12 headers and libraries; a carried
#      runtime-only library is dropped where the system has the same soname), the Caffe source
#      and Boost.Python's source;
#   2. builds Boost.Python 1.74 for the device's python3 (Debian's is for Python 3.11 only);
#   3. links PyTorch's cuBLAS/cuRAND (site-packages/nvidia) where the CUDA toolkit lacks them;
#   4. runs tools/install_caffe.sh --deps-prefix $PREFIX/deps --cuda on --cuda-arch 90
#      (sm_90 SASS + compute_90 PTX) with CAFFE_SRC = the unpacked source;
#   5. writes $PREFIX/env.sh (PYTHONPATH, LD_LIBRARY_PATH, PATH for the built Caffe) and runs
#      tools/gpu/smoke_caffe.py (caffe device_query, import, set_mode_gpu, a forward pass).
#
# Usage: tools/gpu/device_build.sh [--cuda on|off] [--cuda-arch 90] [--prefix /opt/co2fi]
#                                  [--python python3] [--jobs N] [--bundle .device] [--no-smoke]
# --cuda off rehearses everything but nvcc on a machine without a GPU (tests, docs/GPU.md).
# Environment: OUT (logs go there; default $PREFIX/logs), CO2FI_CUDA_COMPILE_ONLY=1 (build CUDA
# code without a GPU: no smoke test on the GPU), CO2FI_NCCL (default off: the GPU machine has no
# registry to fetch NCCL from, and one GPU needs none; install_caffe.sh's --nccl).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cuda=on
cuda_arch=90
prefix=/opt/co2fi
python=python3
jobs=$(nproc)
bundle=$repo/.device
smoke=1

die() { echo "device_build: error: $*" >&2; exit 1; }
say() { echo "device_build: [$(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) cuda=$2; shift 2 ;;
    --cuda-arch) cuda_arch=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --bundle) bundle=$2; shift 2 ;;
    --no-smoke) smoke=0; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$cuda" in on|off) ;; *) die "--cuda must be on or off, not '$cuda'" ;; esac
out=${OUT:-$prefix/logs}
mkdir -p "$prefix" "$out"
log=$out/device_build.log
exec > >(tee -a "$log") 2>&1
t0=$(date +%s)
say "repo $repo, prefix $prefix, bundle $bundle, cuda $cuda (sm_$cuda_arch), $jobs jobs"

# ---- What the machine must have ---------------------------------------------------------------
for f in deps.tar.xz caffe-src.tar.xz boost-python-src.tar.xz; do
  [ -f "$bundle/$f" ] || die "$bundle/$f missing: run tools/gpu/make_bundle.sh here, carry .device"
done
for tool in g++ gcc cmake tar xz "$python"; do
  command -v "$tool" >/dev/null || die "'$tool' not found on this machine"
done
python=$(command -v "$python")
if [ "$cuda" = on ]; then
  command -v nvcc >/dev/null || die "--cuda on needs nvcc on PATH (try PATH=/usr/local/cuda/bin:\$PATH)"
  if [ "${CO2FI_CUDA_COMPILE_ONLY:-0}" != 1 ]; then
    nvidia-smi -L || die "no GPU visible (nvidia-smi -L failed); CO2FI_CUDA_COMPILE_ONLY=1 to build anyway"
  fi
fi
py_ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
py_tag=${py_ver/./}
"$python" -c "import numpy" || die "$python has no numpy"
say "$("$python" --version), numpy $("$python" -c 'import numpy; print(numpy.__version__)'), $(cmake --version | head -1), $(g++ --version | head -1)"
[ "$cuda" = on ] && say "$(nvcc --version | tail -1)"

# ---- 1. Unpack the bundle ---------------------------------------------------------------------
deps=$prefix/deps
stamp=$(cat "$bundle"/deps.tar.xz "$bundle"/boost-python-src.tar.xz | sha256sum | cut -c1-16)
multiarch=$(gcc -print-multiarch 2>/dev/null || true)
multiarch=${multiarch:-x86_64-linux-gnu}
lib=$deps/usr/lib/$multiarch
if [ "$(cat "$deps/.co2fi-stamp" 2>/dev/null || true)" != "py$py_tag-$stamp" ]; then
  say "unpacking deps.tar.xz into $deps"
  rm -rf "$deps" && mkdir -p "$deps"
  tar -C "$deps" -xJf "$bundle/deps.tar.xz"
  [ -d "$lib" ] || die "the bundle's libraries are in usr/lib/x86_64-linux-gnu, not $lib"
  # A runtime-only library the system already has (same soname) is taken from the system:
  # the soname link and the file it points to are removed from the bundle's tree.
  system_libs=$(ldconfig -p 2>/dev/null | awk '{print $1}' | sort -u)
  dropped=$(bash "$repo/tools/gpu/drop_system_libs.sh" "$deps" "$deps/co2fi-transitive-libs.txt" \
    <<< "$system_libs") || die "could not drop the bundle's copies of the system's libraries"
  say "system copies used instead of the bundle's: ${dropped:-none}"

  # ---- 2. Boost.Python for this python ----------------------------------------------------
  py_inc=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  if [ ! -f "$py_inc/Python.h" ]; then
    [ "$py_ver" = 3.12 ] || die "$python ($py_ver) has no Python.h and the bundle's fallback is 3.12"
    say "$python has no Python.h: using the bundle's Python 3.12 headers"
    tar -C "$prefix" -xJf "$bundle/python3.12-fallback.tar.xz"
    py_inc=$prefix/python3.12/include/python3.12
  fi
  say "building Boost.Python 1.74 for Python $py_ver"
  rm -rf "$prefix/boost-python" && tar -C "$prefix" -xJf "$bundle/boost-python-src.tar.xz"
  bp=$prefix/boost-python
  mkdir -p "$bp/obj"
  find "$bp/src" -name '*.cpp' ! -path '*/numpy/*' | sort > "$bp/sources.txt"
  # Flags of Boost's own Jamfile for a shared release build of libs/python.
  cxx=(g++ -O2 -fPIC -pthread -std=c++14 -DNDEBUG -DBOOST_PYTHON_SOURCE -DBOOST_ALL_NO_LIB
    -DBOOST_PYTHON_DYN_LINK=1 -DBOOST_ALL_DYN_LINK=1 -DBOOST_BIND_GLOBAL_PLACEHOLDERS -I"$deps/usr/include" -I"$py_inc" -w)
  export bp
  xargs -P "$jobs" -I{} sh -c 'o="$bp/obj/$(echo "{}" | sed "s|^$bp/src/||; s|/|_|g").o"; '"${cxx[*]}"' -c "{}" -o "$o"' \
    < "$bp/sources.txt" || die "Boost.Python did not compile"
  so=libboost_python$py_tag.so.1.74.0
  g++ -shared -pthread -Wl,-soname,$so -o "$lib/$so" "$bp"/obj/*.o || die "Boost.Python did not link"
  ln -sfn "$so" "$lib/libboost_python$py_tag.so"
  ln -sfn "$so" "$lib/libboost_python3.so"
  echo "py$py_tag-$stamp" > "$deps/.co2fi-stamp"
else
  say "deps already unpacked in $deps"
  py_inc=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  [ -f "$py_inc/Python.h" ] || py_inc=$prefix/python3.12/include/python3.12
fi
rm -rf "$prefix/src" && mkdir -p "$prefix/src" && tar -C "$prefix/src" -xJf "$bundle/caffe-src.tar.xz"

# ---- Environment of the build: the deps' tools first (protoc must match the headers) ---------
ld_path="$lib:$lib/openblas-pthread"
export PATH="$deps/usr/bin:$PATH"
export LD_LIBRARY_PATH="$ld_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CMAKE_POLICY_VERSION_MINIMUM=3.5   # Caffe asks for CMake 2.8.7; CMake 4 needs >= 3.5
protoc --version >/dev/null || die "the bundle's protoc does not run here"
cmake_extra=(-DBoost_NO_BOOST_CMAKE=ON -DBoost_NO_SYSTEM_PATHS=ON
  -DBOOST_INCLUDEDIR="$deps/usr/include" -DBOOST_LIBRARYDIR="$lib"
  -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON
  -DOpenBLAS_INCLUDE_DIR="$deps/usr/include/$multiarch/openblas-pthread"
  -DOpenBLAS_LIB="$lib/libopenblas.so" -DPYTHON_INCLUDE_DIR="$py_inc")
py_lib=$("$python" -c "
import sysconfig, os
d, n = sysconfig.get_config_var('LIBDIR'), sysconfig.get_config_var('LDLIBRARY')
print(os.path.join(d, n) if d and n and os.path.exists(os.path.join(d, n)) and n.endswith('.so') else '')")
if [ -z "$py_lib" ]; then
  [ "$py_ver" = 3.12 ] || die "$python ($py_ver) has no libpython$py_ver.so; the bundle's is 3.12"
  [ -d "$prefix/python3.12" ] || tar -C "$prefix" -xJf "$bundle/python3.12-fallback.tar.xz"
  py_lib=$prefix/python3.12/lib/libpython3.12.so
  [ -f "$py_lib" ] || die "no libpython3.12.so in the bundle's fallback"
  say "$python has no shared libpython: linking the bundle's $py_lib"
  ld_path="$ld_path:$prefix/python3.12/lib"
  export LD_LIBRARY_PATH="$prefix/python3.12/lib:$LD_LIBRARY_PATH"
fi
cmake_extra+=(-DPYTHON_LIBRARY="$py_lib")

# pycaffe needs six and a protobuf that loads protoc 3.21's caffe_pb2; the device's are used if
# they do, else the bundle's wheels (only for Caffe's processes: env.sh).
site=$prefix/site
pyextra=""
if ! "$python" -c "import six, google.protobuf" 2>/dev/null; then
  say "installing the bundle's wheels into $site"
  "$python" -m pip install -q --no-index --no-deps --target "$site" "$bundle"/wheels/*.whl \
    || die "pip could not install the bundle's wheels"
  pyextra=$site
fi

# ---- 3. cuBLAS/cuRAND: the toolkit's, else PyTorch's wheels (nvidia/cu13/...) ----------------
if [ "$cuda" = on ]; then
  cuda_root=$(cd "$(dirname "$(readlink -f "$(command -v nvcc)")")/.." && pwd)
  if [ ! -f "$cuda_root/include/cublas_v2.h" ]; then
    nvsite=$("$python" -c "import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))" \
      2>/dev/null) || die "no cublas_v2.h in $cuda_root and no nvidia/ package in $python"
    hdr=$(find "$nvsite/nvidia" -name cublas_v2.h | head -1)
    rhdr=$(find "$nvsite/nvidia" -name curand.h | head -1)
    [ -n "$hdr" ] && [ -n "$rhdr" ] || die "no cuBLAS/cuRAND headers under $nvsite/nvidia"
    # install_caffe.sh reads $CO2FI_CACHE/cuda-extra/nvidia/<x>/{include,lib}: real folders
    # of links to PyTorch's files (no download, nothing written into site-packages).
    cx=$prefix/cache/cuda-extra/nvidia/torch
    rm -rf "$prefix/cache/cuda-extra" && mkdir -p "$cx/include" "$cx/lib"
    for d in "$(dirname "$hdr")" "$(dirname "$rhdr")"; do ln -sf "$d"/* "$cx/include/"; done
    for l in cublas cublasLt curand; do
      f=$(find "$nvsite/nvidia" -name "lib$l.so.*" | sort | head -1)
      [ -n "$f" ] || die "no lib$l.so.* under $nvsite/nvidia"
      ln -sf "$(dirname "$f")"/* "$cx/lib/"   # with the libraries beside it
    done
    touch "$prefix/cache/cuda-extra/.done"
    say "cuBLAS/cuRAND from $nvsite/nvidia ($(basename "$(readlink -f "$cx/lib/libcublas.so."*)"))"
    ld_path="$ld_path:$cx/lib"
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$cx/lib"   # install_caffe.sh's import check
  fi
fi

# ---- 4. The build ----------------------------------------------------------------------------
say "building Caffe with tools/install_caffe.sh (log: $prefix/cache/logs/)"
export CO2FI_CACHE=$prefix/cache CAFFE_SRC=$prefix/src/caffe
export CO2FI_CMAKE_ARGS="${cmake_extra[*]}"
set +e
caffe_prefix=$(PYTHONPATH="$pyextra${PYTHONPATH:+:$PYTHONPATH}" "$repo/tools/install_caffe.sh" \
  --python "$python" --cuda "$cuda" --cuda-arch "$cuda_arch" --deps-prefix "$deps" --jobs "$jobs" \
  --nccl "${CO2FI_NCCL:-off}" | tail -1)
rc=$?
set -e
newest=$(ls -t "$prefix"/cache/logs/*.log 2>/dev/null | head -1 || true)
[ -n "$newest" ] && cp "$newest" "$out/caffe-build.log"
[ "$rc" = 0 ] && [ -f "$caffe_prefix/.complete" ] || die "install_caffe.sh failed (rc $rc); log: $out/caffe-build.log"

# ---- 5. env.sh and the smoke test ------------------------------------------------------------
cat > "$prefix/env.sh" <<EOF
# Source this before running Caffe (pycaffe or bin/caffe) built by tools/gpu/device_build.sh.
export CO2FI_ROOT=$prefix CO2FI_CAFFE_PREFIX=$caffe_prefix
export PYTHONPATH=$caffe_prefix/python:$repo${pyextra:+:$pyextra}\${PYTHONPATH:+:\$PYTHONPATH}
export LD_LIBRARY_PATH=$caffe_prefix/lib:$ld_path\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export PATH=$caffe_prefix/bin:\$PATH
export GLOG_minloglevel=\${GLOG_minloglevel:-1}
EOF
cp "$caffe_prefix/co2fi-build.json" "$out/caffe-build.json"
say "built $caffe_prefix in $(( $(date +%s) - t0 )) s; environment: source $prefix/env.sh"
if [ "$smoke" = 1 ]; then
  # shellcheck disable=SC1091
  source "$prefix/env.sh"
  mode=gpu
  { [ "$cuda" = off ] || [ "${CO2FI_CUDA_COMPILE_ONLY:-0}" = 1 ]; } && mode=cpu
  if [ "$mode" = gpu ]; then
    "$caffe_prefix/bin/caffe" device_query -gpu 0 2>&1 | tee "$out/device_query.txt" \
      || die "caffe device_query failed"
  fi
  "$python" "$repo/tools/gpu/smoke_caffe.py" --mode "$mode" || die "smoke test failed"
fi
say "done in $(( $(date +%s) - t0 )) s"
