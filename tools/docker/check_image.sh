#!/usr/bin/env bash
# Inside the co2fi image (run by tools/docker/test.sh, no GPU needed): the CUDA architectures the
# image's Caffe holds, pycaffe's own tests, and a tiny demo on the CPU. Everything goes to OUT.
# Usage: tools/docker/check_image.sh OUT
set -uo pipefail
out=${1:?usage: $0 OUT}
cd /opt/co2fi
py=.venv/bin/python
export PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg
say() { echo "check_image: $*" | tee -a "$out/summary.txt"; }
die() { say "FAILED: $*"; exit 1; }
: > "$out/summary.txt" || { echo "check_image: cannot write to $out (is it mounted writable?)" >&2; exit 1; }

prefix=$(readlink -f .venv/caffe) || die "no Caffe linked into /opt/co2fi/.venv"
say "Caffe: $prefix"
cp "$prefix/co2fi-build.json" "$out/caffe-build.json"
want=$($py -c "import json; print(json.load(open('$prefix/co2fi-build.json'))['cuda_arch'])")

# 1. Architectures: cuobjdump on libcaffe.so, else the CMake line of the build log.
if command -v cuobjdump >/dev/null; then
  cuobjdump --list-elf "$prefix/lib/libcaffe.so" > "$out/cuobjdump.txt" 2>&1
  cuobjdump --list-ptx "$prefix/lib/libcaffe.so" >> "$out/cuobjdump.txt" 2>&1
  sass=$(grep -o 'sm_[0-9]*\.cubin' "$out/cuobjdump.txt" | grep -o '[0-9]*' | sort -n -u | tr '\n' ' ')
  ptx=$(grep -o 'sm_[0-9]*\.ptx' "$out/cuobjdump.txt" | grep -o '[0-9]*' | sort -n -u | tr '\n' ' ')
  got=""
  for a in $sass; do
    [[ " $ptx " = *" $a "* ]] && a="$a+PTX"
    got="${got:+$got }$a"
  done
  # The single-number form "N" of install_caffe.sh means N+PTX.
  [[ "$want" =~ ^[0-9]+$ ]] && want="$want+PTX"
  say "libcaffe.so (cuobjdump): SASS for ${sass:-none}; PTX for ${ptx:-none}"
  [ "$got" = "$want" ] || die "libcaffe.so holds '$got', the build asked for '$want'"
else
  grep -h "Added CUDA NVCC flags for" "$CO2FI_CACHE"/logs/build-*.log > "$out/cuobjdump.txt" \
    || die "no cuobjdump and no 'Added CUDA NVCC flags' line in the build log"
  say "no cuobjdump in the image; the build log says: $(tail -1 "$out/cuobjdump.txt")"
fi

# 2. pycaffe's own unit tests (52), against the CUDA build, in CPU mode.
$py -m pytest -p no:cacheprovider -q tests/test_pycaffe_upstream.py 2>&1 | tee "$out/pycaffe-tests.log"
rc=${PIPESTATUS[0]}
last=$(grep -E '(passed|failed|error)' "$out/pycaffe-tests.log" | tail -1)
[ "$rc" = 0 ] || die "pycaffe's tests: $last"
grep -q skipped <<< "$last" && die "pycaffe's tests were skipped ($last): pycaffe does not import"
say "pycaffe's tests: $last"

# 3. A tiny demo on the CPU: synthetic clips -> frames + flow -> training -> evaluation -> tables.
$py tools/demo.py --out "$out/demo" --classes 3 --clips-per-class 4 --frames 24 --flow farneback \
  --methods "Two-stream baseline" --max-iter 4 --workers 2 2>&1 | tee "$out/demo.log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || die "tiny demo exited $rc (see $out/demo.log)"
[ -s "$out/demo/results.json" ] || die "tiny demo wrote no $out/demo/results.json"
say "tiny demo: $out/demo/results.json, $out/demo/comparison.md"
say "OK"
