#!/usr/bin/env bash
# Pack a built Caffe as a runtime that needs nothing of the machine it runs on but the NVIDIA
# driver (libcuda) and CUDA 13's cudart, cuBLAS and cuRAND: .device/runtime.tar.xz.
#
# Runs HERE, after a build (tools/gpu/device_build.sh; in the rehearsal chroot, see
# tools/gpu/rehearse_chroot.sh). The runtime holds, under RT (default /opt/co2fi/rt, where
# tools/gpu/use_runtime.sh unpacks it on the GPU machine):
#   lib/      every shared library Caffe, pycaffe and the interpreter load (ldd closure), glibc's
#             loader and libc, libstdc++ and libgcc_s included; less the CUDA libraries
#   python/   the interpreter (one runtime: libpython beside it), its standard library (tests,
#             tkinter, idlelib, ensurepip dropped) and site-packages: numpy, protobuf, six
#   caffe/    bin/caffe and python/caffe (pycaffe) of the build
# Every ELF file's RPATH points into RT/lib (relative: $ORIGIN), each executable's interpreter
# is RT/lib/ld-linux-x86-64.so.2 (patchelf), so the host's glibc, libstdc++ and Python are never
# loaded; tools/gpu/use_runtime.sh links the host's CUDA libraries into RT/cuda and writes
# env.sh (LD_LIBRARY_PATH = RT/cuda only).
#
# Usage: tools/gpu/make_runtime.sh --caffe PREFIX --python PY --launcher EXE [--root DIR]
#                                  [--rt /opt/co2fi/rt] [--out .device/runtime.tar.xz]
#   --caffe    the install_caffe.sh prefix (bin/caffe, lib/, python/caffe), a path inside ROOT
#   --python   the interpreter the build used (inside ROOT): its stdlib and site-packages go in
#   --launcher an executable of the same Python linked to libpython (HERE's path): carried as
#              python/bin/python3 (the static interpreters of Debian/Ubuntu would be a second
#              copy of the runtime beside the libpython that pycaffe links)
#   --root     the build's root file system (default /): ldd runs there (chroot)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
caffe="" python="" launcher="" root=/ rt=/opt/co2fi/rt out=$repo/.device/runtime.tar.xz
die() { echo "make_runtime: error: $*" >&2; exit 1; }
say() { echo "make_runtime: $*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --caffe) caffe=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --launcher) launcher=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --rt) rt=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n "2,/^set -euo/p" "$0" | sed '$ d'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$caffe" ] && [ -n "$python" ] && [ -n "$launcher" ] || die "--caffe, --python and --launcher are required"
command -v patchelf >/dev/null || die "patchelf not found (apt-get install patchelf)"
[ -f "$root$caffe/lib/libcaffe.so" ] || [ -n "$(ls "$root$caffe"/lib/libcaffe.so* 2>/dev/null)" ] \
  || die "no lib/libcaffe.so* in $root$caffe"
[ -x "$launcher" ] || die "--launcher $launcher is not an executable"
run() { if [ "$root" = / ]; then "$@"; else chroot "$root" "$@"; fi; }

# CUDA's libraries and the driver come from the GPU machine; never carried.
HOST_LIBS='^(libcuda|libcudart|libcublas|libcublasLt|libcurand|libnvidia-|libcudadebugger)\.'
stage=$(mktemp -d "${TMPDIR:-/tmp}/co2fi-runtime.XXXXXX")
trap 'rm -rf "$stage"' EXIT
R=$stage/rt
mkdir -p "$R/lib" "$R/python/bin" "$R/python/lib" "$R/caffe/bin" "$R/caffe/python"

# ---- Python: stdlib, site-packages, libpython, the launcher ----------------------------------
read -r stdlib platstdlib purelib ver ldlib libdir < <(run "$python" -c "
import sysconfig as s, sys
p = s.get_paths()
print(p['stdlib'], p['platstdlib'], p['purelib'], '%d.%d' % sys.version_info[:2],
      s.get_config_var('LDLIBRARY'), s.get_config_var('LIBDIR'))") || die "cannot run $python in $root"
pyroot=$R/python/lib/python$ver
say "Python $ver: stdlib $stdlib, site-packages $purelib, $libdir/$ldlib"
tar -C "$root$stdlib" -cf - --exclude=./test --exclude=./idlelib --exclude=./tkinter \
  --exclude=./turtledemo --exclude=./ensurepip --exclude=./lib2to3 --exclude=./site-packages \
  --exclude=./dist-packages --exclude='__pycache__' --exclude='./config-*' --exclude='_tkinter*' \
  --exclude='nis.*' --exclude='_test*' --exclude='xxlimited*' --exclude='_ctypes_test*' . \
  | { mkdir -p "$pyroot" && tar -C "$pyroot" -xf -; }
[ "$platstdlib" = "$stdlib" ] || [ ! -d "$root$platstdlib/lib-dynload" ] \
  || cp -a "$root$platstdlib/lib-dynload" "$pyroot/"
mkdir -p "$pyroot/site-packages"
for pkg in numpy numpy.libs google six.py; do
  [ -e "$root$purelib/$pkg" ] || die "no $pkg in $purelib"
  cp -a "$root$purelib/$pkg" "$pyroot/site-packages/"
done
cp -a "$root$purelib"/protobuf-*.dist-info "$root$purelib"/numpy-*.dist-info "$pyroot/site-packages/"
find "$pyroot/site-packages" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
find "$pyroot" -name '*.pyi' -delete
real=$(readlink -f "$root$libdir/$ldlib")
[ -f "$real" ] || die "no $libdir/$ldlib in $root"
cp "$real" "$R/python/lib/$(basename "${ldlib%.so}").so.1.0"
cp "$launcher" "$R/python/bin/python$ver"
ln -s "python$ver" "$R/python/bin/python3"
ln -s "python$ver" "$R/python/bin/python"

# ---- Caffe --------------------------------------------------------------------------------
cp -a "$root$caffe/python/caffe" "$R/caffe/python/"
find "$R/caffe/python" -depth -type d \( -name test -o -name __pycache__ \) -exec rm -rf {} +
cp -a "$root$caffe/bin/caffe" "$R/caffe/bin/" 2>/dev/null || cp -aL "$root$caffe/bin/caffe.bin" "$R/caffe/bin/caffe"
for f in "$root$caffe"/lib/libcaffe.so*; do cp -a "$f" "$R/lib/"; done
[ -f "$root$caffe/co2fi-build.json" ] && cp "$root$caffe/co2fi-build.json" "$R/caffe/"

# ---- The library closure (ldd in ROOT, with the build's LD_LIBRARY_PATH) ---------------------
elfs() { python3 - "$R" <<'PY'
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for n in files:
        p = os.path.join(d, n)
        if not os.path.islink(p) and (".so" in n or os.path.basename(d) == "bin"):
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    print(p)
PY
}
ld_path=$(grep -o 'LD_LIBRARY_PATH=[^$]*' "$root${caffe%/cache/*}/env.sh" 2>/dev/null | head -1 | cut -d= -f2 || true)
for pass in 1 2 3; do
  added=0
  for f in $(elfs); do
    inside=${f#"$R"}
    # ldd of the file as it will be found inside ROOT: the staged copy stands in its place.
    tmp=$root/tmp/co2fi-ldd.$$
    cp "$f" "$tmp"
    while read -r name arrow path rest; do
      [ "$arrow" = "=>" ] || continue
      if [[ "$name" =~ $HOST_LIBS ]]; then echo "$name" >> "$stage/cuda-ldd.txt"; continue; fi
      if [ "$path" = "not" ]; then
        # numpy's own libraries are found through their $ORIGIN paths, not from this copy.
        case "$inside" in */site-packages/*) ;; *) say "warning: $inside needs $name: not found" ;; esac
        continue
      fi
      if [ -e "$R/lib/$name" ] || [ "$name" = "$(basename "${ldlib%.so}").so.1.0" ]; then continue; fi
      case "$path" in */site-packages/*) continue ;; esac
      cp -L "$root$path" "$R/lib/$name"
      added=$((added + 1))
    done < <(run env LD_LIBRARY_PATH="$ld_path:$libdir" ldd "/tmp/co2fi-ldd.$$" 2>/dev/null || true)
    rm -f "$tmp"
  done
  if [ "$added" = 0 ]; then break; fi
done
loader=$(run sh -c 'readlink -f /lib64/ld-linux-x86-64.so.2')
cp -L "$root$loader" "$R/lib/ld-linux-x86-64.so.2"
# glibc's pieces that are loaded by name, not listed by ldd of these files.
for l in libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 libresolv.so.2; do
  if [ ! -e "$R/lib/$l" ]; then
    p=$(run /sbin/ldconfig -p | awk -v l="$l" '$1 == l {print $NF; exit}')
    if [ -n "$p" ]; then cp -L "$root$p" "$R/lib/$l"; else say "warning: no $l in $root"; fi
  fi
done

# ---- Stripped; RPATHs and interpreters ------------------------------------------------------
# (site-packages' wheels come stripped; strip before patchelf, never after)
for f in $(elfs); do
  case "$f" in */site-packages/*) ;; *) strip --strip-unneeded "$f" 2>/dev/null || true ;; esac
done
for f in $(elfs); do
  d=$(dirname "${f#"$R"}")
  rel=$(python3 -c "import os,sys; print(os.path.relpath('/lib', sys.argv[1]))" "$d")
  pyrel=$(python3 -c "import os,sys; print(os.path.relpath('/python/lib', sys.argv[1]))" "$d")
  case "$(basename "$f")" in ld-linux*|libc.so.6) continue ;; esac
  # RT's folders first, then the file's own $ORIGIN entries (numpy's numpy.libs); absolute
  # entries (the build machine's folders) are dropped. DT_RPATH, not RUNPATH: it is searched
  # before LD_LIBRARY_PATH and holds for what the file's dependencies load in turn.
  keep=$(patchelf --print-rpath "$f" 2>/dev/null | tr ':' '\n' | grep '^\$ORIGIN' | paste -sd: || true)
  patchelf --force-rpath --set-rpath "\$ORIGIN/$rel:\$ORIGIN/$pyrel${keep:+:$keep}" "$f"
  if patchelf --print-interpreter "$f" >/dev/null 2>&1; then
    patchelf --set-interpreter "$rt/lib/ld-linux-x86-64.so.2" "$f"
  fi
done
# The CUDA libraries the runtime's files need (use_runtime.sh links the GPU machine's).
# (ldd's names too: libcublas.so.13 needs libcublasLt.so.13.)
touch "$stage/cuda-ldd.txt"
{ cat "$stage/cuda-ldd.txt"; for f in $(elfs); do patchelf --print-needed "$f" 2>/dev/null || true; done; } \
  | { grep -E "$HOST_LIBS" || true; } | { grep -v '^libcuda\.' || true; } \
  | sed 's/^\(libcublas\)\.so\.\([0-9]*\)$/&\n\1Lt.so.\2/' | sort -u > "$R/cuda-needed.txt"
echo "$rt" > "$R/RT_PATH"
{
  echo "# co2fi GPU runtime, made $(date -u +%FT%TZ) by tools/gpu/make_runtime.sh; unpack at $rt"
  echo "python $ver; caffe $caffe; root $root"
  echo "host libraries (from the GPU machine): $HOST_LIBS"
  (cd "$R" && find . -type f -printf '%s %P\n' | sort -k2)
} > "$R/MANIFEST.txt"
mkdir -p "$(dirname "$out")"
say "packing $(du -sh "$R" | cut -f1) into $out"
tar -C "$stage" -cf - rt | xz -T2 -8 > "$out.tmp" && mv "$out.tmp" "$out"
bytes=$(stat -c %s "$out")
echo "runtime: $out, $bytes bytes ($(( (bytes + 1048575) / 1048576 )) MiB), unpacked $(du -sb "$R" | cut -f1) bytes"
