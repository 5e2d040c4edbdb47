#!/usr/bin/env bash
# Assemble .device/: what a GPU machine without a package registry needs to build our Caffe.
#
# Runs HERE (Debian 12 amd64, with network access to Debian's archive and PyPI). The GPU machine
# (docs/GPU.md) has nvcc 13, gcc, CMake and Python 3.12 with PyTorch, numpy and protobuf, but
# none of Caffe's libraries; tools/gpu/device_build.sh builds there from this bundle:
#   deps.tar.xz          Debian 12 packages (dev + runtime closure), unpacked with dpkg -x and
#                        pruned (no static libs, docs or man pages), Debian's "alternatives"
#                        links for OpenBLAS made by hand; unpacked there into a private prefix.
#   caffe-src.tar.xz     Debian's caffe source package (what install_caffe.sh builds), unpacked
#                        with its patch series applied; docs and example data dropped.
#   boost-python-src.tar.xz   Boost 1.74's libs/python/src (Debian's source package, Debian's
#                        patches applied): built there for the device's Python 3.12, since
#                        Debian 12's libboost-python is built for Python 3.11 only.
#   python3.12-fallback.tar.xz  Python 3.12 headers and libpython3.12.so (pyenv's 3.12.1), used
#                        only if the device's python3 lacks them.
#   wheels/              protobuf 4.21.12 (matches protoc 3.21.12; used only if the device's
#                        protobuf cannot load caffe_pb2).
#   MANIFEST.txt         every .deb with version and sha256, every file with its size.
# cuBLAS/cuRAND are not carried: the device's PyTorch ships them (site-packages/nvidia/cu13).
#
# Usage: tools/gpu/make_bundle.sh [--dry-run] [--out DIR] | --list-libs DEB...
#   --dry-run   print the Debian packages, sources and files the bundle would hold; fetch nothing
#   --list-libs print the shared-library paths (files and soname links) the .debs install
# Environment: CO2FI_CACHE (default ~/.cache/co2fi): downloads are cached in $CO2FI_CACHE/bundle.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$repo/.device
cache=${CO2FI_CACHE:-$HOME/.cache/co2fi}
dl=$cache/bundle
dry_run=0
readonly SUITE=bookworm
readonly MIRROR=${CO2FI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly BOOST_SRC_VERSION="1.74.0+ds1-21"
readonly CAFFE_DEB_VERSION="1.0.0+git20180821.99bd997-8"
readonly PROTOBUF_WHEEL="protobuf==4.21.12"
readonly LIMIT_MIB=48   # of the device tool's 64 MiB carry limit; the repo itself takes the rest

die() { echo "make_bundle: error: $*" >&2; exit 1; }
say() { echo "make_bundle: $*" >&2; }

# The shared libraries a .deb installs: every path under usr/lib named *.so*, symlinks (the
# sonames the loader looks for) included. `dpkg-deb -c`'s last field is a link's target, not
# its path, so the paths come from the package's tar listing.
list_libs() {
  local deb
  for deb in "$@"; do
    [ -f "$deb" ] || die "--list-libs: no such .deb '$deb'"
    dpkg-deb --fsys-tarfile "$deb" | tar -tf - | sed 's|^\./||' \
      | grep -E '^usr/lib/.*\.so($|\.)' || true
  done | sort -u
}

while [ $# -gt 0 ]; do
  case "$1" in
    --list-libs) shift; list_libs "$@"; exit 0 ;;
    --dry-run) dry_run=1; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# Headers and link-time .so files of what Caffe's CMake looks for (tools/install_caffe.sh).
DEV_PACKAGES=(libboost1.74-dev libboost-system1.74-dev libboost-thread1.74-dev
  libboost-filesystem1.74-dev libboost-atomic1.74-dev libboost-chrono1.74-dev
  libboost-date-time1.74-dev libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev
  libhdf5-dev libopenblas-dev libopenblas-pthread-dev liblmdb-dev)
# Shared libraries Caffe loads; their dependency closure is added by apt (see closure()).
RUNTIME_PACKAGES=(libboost-system1.74.0 libboost-thread1.74.0 libboost-filesystem1.74.0
  libboost-atomic1.74.0 libboost-chrono1.74.0 libboost-date-time1.74.0 libprotobuf32
  libprotobuf-lite32 libprotoc32 libgoogle-glog0v6 libgflags2.2 libunwind8 libhdf5-103-1
  libhdf5-hl-100 libhdf5-cpp-103-1 libhdf5-hl-cpp-100 libaec0 libsz2 libopenblas0 libopenblas0-pthread libgfortran5 libquadmath0
  liblmdb0)
# Build tools a bare CUDA image may lack (install_caffe.sh runs make and patch).
TOOL_PACKAGES=(make patch)
# Assumed on any glibc Linux with a C++ compiler; never carried.
BASE_PACKAGES=(libc6 libgcc-s1 libstdc++6 gcc-12-base)
# Alternatives of libopenblas0 that Caffe does not use (apt lists every alternative).
UNUSED_PACKAGES=(libopenblas0-openmp libopenblas0-serial libgomp1)

if [ "$dry_run" = 1 ]; then
  echo "debian-suite: $SUITE"
  echo "dev-packages: ${DEV_PACKAGES[*]}"
  echo "runtime-packages: ${RUNTIME_PACKAGES[*]} (+ their dependency closure, less ${BASE_PACKAGES[*]})"
  echo "tool-packages: ${TOOL_PACKAGES[*]}"
  echo "source: caffe=$CAFFE_DEB_VERSION (Debian), boost1.74=$BOOST_SRC_VERSION libs/python/src"
  echo "wheels: $PROTOBUF_WHEEL"
  echo "files: deps.tar.xz caffe-src.tar.xz boost-python-src.tar.xz python3.12-fallback.tar.xz" \
    "wheels/ MANIFEST.txt"
  echo "out: $out"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb dpkg-source xz tar sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (this script runs on Debian 12)"
done

# ---- A private apt state: bookworm binaries and sources, nothing of the system's touched ----
apt_dir=$dl/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dl/debs" "$dl/src"
cat > "$apt_dir/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $SUITE-security main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main
EOF
: > "$apt_dir/status"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::State::status=$apt_dir/status" -o "APT::Architecture=amd64"
  -o "APT::Architectures=amd64" -o "APT::Sandbox::User=root")
if [ ! -f "$apt_dir/.updated" ] || [ -n "$(find "$apt_dir/.updated" -mmin +1440)" ]; then
  say "apt-get update (private lists in $apt_dir)"
  apt-get "${apt_opts[@]}" -qq update >&2 || die "apt-get update of the private $SUITE lists failed"
  touch "$apt_dir/.updated"
fi

closure() {  # runtime packages and everything they depend on, less the base packages
  apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${RUNTIME_PACKAGES[@]}" \
    | grep -v '^ ' | grep -v '^<' | sort -u \
    | grep -vxF -f <(printf "%s\n" "${BASE_PACKAGES[@]}" "${UNUSED_PACKAGES[@]}")
}
mapfile -t runtime < <(closure)
[ ${#runtime[@]} -ge ${#RUNTIME_PACKAGES[@]} ] || die "apt-cache depends returned too few packages"
mapfile -t packages < <(printf '%s\n' "${DEV_PACKAGES[@]}" "${runtime[@]}" "${TOOL_PACKAGES[@]}" \
  | sort -u)
say "${#packages[@]} Debian packages: ${packages[*]}"
(cd "$dl/debs" && apt-get "${apt_opts[@]}" -qq download "${packages[@]}" >&2) \
  || die "apt-get download failed"

# ---- deps.tar.xz -----------------------------------------------------------------------------
stage=$(mktemp -d "${TMPDIR:-/tmp}/co2fi-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/deps
mkdir -p "$root" "$out"
: > "$stage/debs.txt"
for p in "${packages[@]}"; do
  deb=$(ls -t "$dl/debs/${p}_"*_amd64.deb "$dl/debs/${p}_"*_all.deb 2>/dev/null | head -1 || true)
  [ -n "$deb" ] || die "no .deb downloaded for $p"
  dpkg-deb -x "$deb" "$root"
  printf '%s %s\n' "$(basename "$deb")" "$(sha256sum "$deb" | cut -d' ' -f1)" >> "$stage/debs.txt"
done
lib=$root/usr/lib/x86_64-linux-gnu
# Static libraries, documentation and Boost's CMake configs (they name Debian's Python 3.11
# boost_python; Caffe's CMake then uses CMake's own FindBoost, pointed at the prefix).
find "$root" -name '*.a' -delete
rm -f "$lib"/openblas-pthread/liblapack.so* "$lib"/openblas-pthread/libblas.so*   # Caffe: cblas only
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian" \
  "$root/usr/share/bug" "$root/usr/share/locale" "$root/etc" "$lib"/cmake/Boost* "$lib"/cmake/boost*
# Debian's alternatives, which dpkg -x does not set up: OpenBLAS as libopenblas.so and cblas.h.
ln -sfn openblas-pthread/libopenblas.so "$lib/libopenblas.so"
ln -sfn openblas-pthread/libopenblas.so.0 "$lib/libopenblas.so.0"
for h in "$root"/usr/include/x86_64-linux-gnu/openblas-pthread/*.h; do
  ln -sfn "openblas-pthread/$(basename "$h")" "$root/usr/include/x86_64-linux-gnu/$(basename "$h")"
done
# Dangling links to packages not carried (Fortran/C++ HDF5, ...) only mislead CMake.
find "$root" -xtype l -delete
[ -f "$lib/openblas-pthread/libopenblas.so.0" ] || die "OpenBLAS library missing from the bundle"
[ -f "$root/usr/include/boost/python.hpp" ] || die "Boost headers missing from the bundle"
[ -x "$root/usr/bin/protoc" ] || die "protoc missing from the bundle"
cp "$stage/debs.txt" "$root/co2fi-debs.txt"
# Runtime-only packages: the device uses its own copy of a library when it has one (same soname).
printf '%s\n' "${runtime[@]}" | grep -vxF -f <(printf '%s\n' "${RUNTIME_PACKAGES[@]}") \
  > "$root/co2fi-transitive-packages.txt" || true
for p in $(cat "$root/co2fi-transitive-packages.txt"); do
  ls -t "$dl/debs/${p}_"*.deb | head -1
done | xargs -r "$0" --list-libs > "$root/co2fi-transitive-libs.txt"
say "packing deps.tar.xz"
tar -C "$root" -cf - . | xz -T1 -6 > "$out/deps.tar.xz"

# ---- caffe-src.tar.xz: the Debian source package install_caffe.sh builds, unpacked ----------
caffe_deb_dir=$cache/src/debian-$CAFFE_DEB_VERSION
if [ ! -f "$caffe_deb_dir/.done" ]; then
  say "fetching Debian source package caffe=$CAFFE_DEB_VERSION via tools/install_caffe.sh's cache"
  mkdir -p "$caffe_deb_dir.tmp"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bullseye main" \
    > "$dl/bullseye-src.list"
  bo=(-o "Dir::Etc::SourceList=$dl/bullseye-src.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$dl/apt-bullseye" -o "Dir::Cache=$dl/apt-bullseye-cache"
    -o "APT::Sandbox::User=root")
  mkdir -p "$dl/apt-bullseye/partial" "$dl/apt-bullseye-cache/archives/partial"
  apt-get "${bo[@]}" -qq update >&2 || die "apt-get update (bullseye sources) failed"
  (cd "$caffe_deb_dir.tmp" && apt-get "${bo[@]}" -qq source --download-only \
    "caffe=$CAFFE_DEB_VERSION" >&2) || die "apt-get source caffe=$CAFFE_DEB_VERSION failed"
  mv "$caffe_deb_dir.tmp" "$caffe_deb_dir" && touch "$caffe_deb_dir/.done"
fi
(cd "$caffe_deb_dir" && dpkg-source --no-check -x "caffe_$CAFFE_DEB_VERSION.dsc" "$stage/caffe") \
  >/dev/null || die "dpkg-source could not unpack caffe_$CAFFE_DEB_VERSION.dsc"
# Keep what CMake reads and install_caffe.sh copies (models/ and examples/ prototxt files); drop
# docs, notebooks, images and Debian's packaging.
rm -rf "$stage/caffe/data" "$stage/caffe/.pc" "$stage/caffe/debian"
find "$stage/caffe/docs" "$stage/caffe/matlab" -type f ! -name CMakeLists.txt -delete
find "$stage/caffe/examples" "$stage/caffe/models" -type f ! -name '*.prototxt' \
  ! -name CMakeLists.txt ! -name '*.cpp' ! -name '*.hpp' ! -name '*.h' -delete
find "$stage/caffe" -type d -empty -delete
echo "debian:$CAFFE_DEB_VERSION (dpkg-source -x, docs and example data removed)" \
  > "$stage/caffe/CO2FI_SOURCE"
tar -C "$stage" -cf - caffe | xz -T1 -6 > "$out/caffe-src.tar.xz"

# ---- boost-python-src.tar.xz -----------------------------------------------------------------
boost_dir=$dl/src/boost1.74
if [ ! -f "$boost_dir/.done" ]; then
  say "fetching Debian source package boost1.74=$BOOST_SRC_VERSION (about 60 MB, once)"
  rm -rf "$boost_dir" && mkdir -p "$boost_dir"
  (cd "$boost_dir" && apt-get "${apt_opts[@]}" -qq source --download-only \
    "boost1.74=$BOOST_SRC_VERSION" >&2) || die "apt-get source boost1.74 failed"
  touch "$boost_dir/.done"
fi
bsrc=$stage/boost
mkdir -p "$bsrc"
orig=$(ls "$boost_dir"/boost1.74_*.orig.tar.xz)
top=$(tar -tJf "$orig" 2>/dev/null | head -1 | cut -d/ -f1 || true)
tar -C "$bsrc" -xJf "$orig" --wildcards "$top/libs/python/src/*" "$top/libs/python/include/*"
tar -C "$bsrc" -xJf "$boost_dir"/boost1.74_*.debian.tar.xz debian/patches
applied=()
for p in $(grep -v '^#' "$bsrc/debian/patches/series" 2>/dev/null || true); do
  if grep -q -E '^\+\+\+ [^ ]*libs/python/src/' "$bsrc/debian/patches/$p"; then
    patch -d "$bsrc/$top" -p1 --forward -s < "$bsrc/debian/patches/$p" \
      || die "Debian's boost patch $p does not apply to libs/python"
    applied+=("$p")
  fi
done
mkdir -p "$stage/boost-python"
mv "$bsrc/$top/libs/python/src" "$stage/boost-python/src"
echo "boost1.74=$BOOST_SRC_VERSION libs/python/src; Debian patches applied: ${applied[*]:-none}" \
  > "$stage/boost-python/CO2FI_SOURCE"
tar -C "$stage" -cf - boost-python | xz -T1 -6 > "$out/boost-python-src.tar.xz"

# ---- python3.12-fallback.tar.xz: headers + libpython for a device python3 without them --------
py312=${CO2FI_PY312:-$(ls "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1 || true)}
[ -n "$py312" ] || py312=$(command -v python3.12 || true)
[ -n "$py312" ] || die "no python3.12 here (set CO2FI_PY312): needed for the Python 3.12 fallback"
py_inc=$("$py312" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
py_libdir=$("$py312" -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
[ -f "$py_inc/Python.h" ] || die "$py312 has no Python.h"
mkdir -p "$stage/python3.12/include" "$stage/python3.12/lib"
cp -a "$py_inc" "$stage/python3.12/include/"
if [ -f "$py_libdir/libpython3.12.so.1.0" ]; then
  cp "$py_libdir/libpython3.12.so.1.0" "$stage/python3.12/lib/"
  strip --strip-unneeded "$stage/python3.12/lib/libpython3.12.so.1.0"
  ln -s libpython3.12.so.1.0 "$stage/python3.12/lib/libpython3.12.so"
fi
"$py312" -c "import sys; print(sys.version)" > "$stage/python3.12/CO2FI_SOURCE"
tar -C "$stage" -cf - python3.12 | xz -T1 -6 > "$out/python3.12-fallback.tar.xz"

# ---- wheels ----------------------------------------------------------------------------------
mkdir -p "$out/wheels"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux2014_x86_64 -d "$out/wheels" "$PROTOBUF_WHEEL" >&2 \
  || die "pip download $PROTOBUF_WHEEL failed"

# ---- manifest and size -----------------------------------------------------------------------
{
  echo "# co2fi GPU bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) by tools/gpu/make_bundle.sh"
  echo "## Debian $SUITE packages (file sha256)"
  sort "$stage/debs.txt"
  echo "## files (bytes)"
  (cd "$out" && find . -type f ! -name MANIFEST.txt -printf '%s %P\n' | sort -k2)
} > "$out/MANIFEST.txt"
bytes=$(du -sb "$out" | cut -f1)
mib=$(( (bytes + 1048575) / 1048576 ))
echo "bundle: $out, $bytes bytes ($mib MiB); limit for the bundle $LIMIT_MIB MiB of the 64 MiB carry"
[ "$mib" -le "$LIMIT_MIB" ] || die "the bundle is $mib MiB, over $LIMIT_MIB MiB"
