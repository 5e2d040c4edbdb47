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
# They write snapshots into the working folder: a scratch one (the image's is read-only to users).
rc=0
scratch=$(mktemp -d)
(cd "$scratch" && /opt/co2fi/$py -m pytest -p no:cacheprovider -q --rootdir /opt/co2fi \
  /opt/co2fi/tests/test_pycaffe_upstream.py) > "$out/pycaffe-tests.log" 2>&1 || rc=$?
rm -rf "$scratch"
[ "$rc" = 0 ] || tail -n 40 "$out/pycaffe-tests.log"
last=$(grep -E '(passed|failed|error)' "$out/pycaffe-tests.log" | tail -1)
[ "$rc" = 0 ] || die "pycaffe's tests: $last"
grep -q skipped <<< "$last" && die "pycaffe's tests were skipped ($last): pycaffe does not import"
say "pycaffe's tests: $last"

# 3. A tiny demo on the CPU (its console, Caffe's log lines included, goes to demo.log): synthetic clips -> frames + flow -> training -> evaluation -> tables.
# (The sizes of tests/test_pipeline_e2e.py: every demo method, 4 iterations a stage.)
$py tools/demo.py --out "$out/demo" --classes 5 --clips-per-class 3 --frames 40 --flow farneback \
  --max-iter 4 --fusion-iters 4 --pretrain-iters 3 --pretrain-clips 2 --pretrain-cache "$out/pretrain-cache" --workers 2 > "$out/demo.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { tail -n 40 "$out/demo.log"; die "tiny demo exited $rc (see $out/demo.log)"; }
grep -E '^\| (Two-stream baseline|CO2FI-complete|CO2FI\+ASYN)' "$out/demo/comparison.md" || true
[ -s "$out/demo/results.json" ] || die "tiny demo wrote no $out/demo/results.json"
say "tiny demo: $out/demo/results.json, $out/demo/comparison.md"
say "OK"
