#!/usr/bin/env bash
# Why does pycaffe crash on this machine, and how can it run? Run after `source $PREFIX/env.sh`
# (tools/gpu/device_build.sh), from the repo root, when the smoke test fails. Appends its
# findings to REPORT and prints, as its last line, `RUNNER=<words>`: the first candidate way of
# running Python (environment assignments, then the interpreter) under which
# tools/gpu/smoke_caffe.py passes in MODE; `RUNNER=` when none does.
#
# Usage: tools/gpu/diagnose_pycaffe.sh REPORT [MODE=gpu] [PYTHON=python3]
#
# Seen on the lent H200 (Ubuntu 24.04, Python 3.12.3, 2026-11-29; docs/GPU.md): `caffe
# device_query` ran; `import caffe`, set_mode_cpu() and set_random_seed() ran; the first
# caffe.Net (an Input layer alone, CPU mode) segfaulted, and with no GPU visible set_mode_cpu()
# itself did. A launcher with the runtime in libpython (no second copy of it) crashed the same
# way. What both crashing calls share is a glog message from a process that never called
# InitGoogleLogging (the caffe tool calls it), hence the candidates below.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
report=${1:?usage: diagnose_pycaffe.sh REPORT [MODE] [PYTHON]}
mode=${2:-gpu}
python=$(command -v "${3:-python3}")
smoke=$repo/tools/gpu/smoke_caffe.py
step() { echo; echo "## $*"; }
net=$(mktemp --suffix=.prototxt)
"$python" "$smoke" --write-net "$net"

{
  echo "# pycaffe diagnosis ($(date -u +%FT%TZ))"
  # The backtrace first: it is what a later session needs most.
  step "native backtrace of the crash (cuda-gdb; smoke --mode cpu)"
  if command -v cuda-gdb >/dev/null; then
    timeout 120 cuda-gdb -q -batch -ex run -ex "bt 40" -ex "info registers rip" \
      --args "$python" "$smoke" --mode cpu 2>&1 \
      | grep -vE '^\[(New|Thread|Inferior|Detaching)|^warning: |^Using host libthread' | tail -60
  else
    echo "cuda-gdb not found"
  fi
  step "the caffe tool on the same net (C++ alone: CPU, then GPU 0)"
  GLOG_minloglevel=0 timeout 60 caffe time -model "$net" -iterations 2 2>&1 | tail -4
  echo "rc ${PIPESTATUS[0]}"
  GLOG_minloglevel=0 timeout 60 caffe time -model "$net" -iterations 2 -gpu 0 2>&1 | tail -4
  echo "rc ${PIPESTATUS[0]}"
  # Ubuntu 24.04's glibc (2.39) can run a process with the x86 shadow stack (CET) when the
  # kernel (6.6+) and CPU allow and the program is marked for it (Ubuntu builds with
  # -fcf-protection); Debian 12's libraries in the bundle are not marked. The caffe tool, linked
  # to them at start, would run without it; python3, which loads them later, maybe not.
  step "x86 shadow stack (CET): CPU flags, the interpreter's thread features, ELF markings"
  grep -m1 -o -wE 'user_shstk|shstk|ibt' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
  "$python" -c "print(''.join(l for l in open('/proc/self/status') if l.startswith('x86_')) or 'no x86_Thread_features line')"
  for f in "$(readlink -f "$python")" "$(dirname "$(readlink -f "$(command -v caffe)")")/../lib/libcaffe.so" \
      "$(ldconfig -p | awk '/libc.so.6 /{print $NF; exit}')"; do
    [ -e "$f" ] && echo "$(basename "$f"): $(readelf -n "$f" 2>/dev/null | grep -oE 'SHSTK|IBT' | sort -u | tr '\n' ' ')"
  done
  echo "bundle libglog: $(readelf -n "$(ldd "$(dirname "$(readlink -f "$(command -v caffe)")")/../lib/libcaffe.so" | awk '/libglog/{print $3}')" 2>/dev/null | grep -oE 'SHSTK|IBT' | sort -u | tr '\n' ' ')"
  step "interpreter"
  echo "$python -> $(readlink -f "$python")"
  ldd "$(readlink -f "$python")" | grep -iE 'python|not found' || echo "(no libpython: a static interpreter)"
  so=$("$python" -c "import importlib.util as u; print(u.find_spec('caffe._caffe').origin)" 2>&1)
  step "_caffe.so: $so"
  ldd "$so" 2>&1 | grep -iE 'python|caffe|boost|protobuf|glog|gflags|unwind|cublas|curand|cudart|not found'
  step "step by step (faulthandler)"
  timeout 60 "$python" -X faulthandler - <<'EOF' 2>&1 | tail -25
import tempfile
print("import caffe", flush=True); import caffe
print("set_mode_cpu", flush=True); caffe.set_mode_cpu()
print("set_random_seed", flush=True); caffe.set_random_seed(0)
net = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
f = tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False); f.write(net); f.close()
print("caffe.Net (Input only)", flush=True); n = caffe.Net(f.name, caffe.TEST)
print("forward", flush=True); n.forward()
print("OK", flush=True)
EOF
  echo "rc ${PIPESTATUS[0]}"
} >> "$report" 2>&1

# Candidate ways to run pycaffe, cheapest first: "label|environment assignments|interpreter".
inc=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
libdir=$("$python" -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
launcher=$(dirname "$python")/python$ver-shared-libpython
src=$(mktemp --suffix=.c)
printf '#include <Python.h>\nint main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n' > "$src"
gcc -O2 -o "$launcher" "$src" -I"$inc" -L"$libdir" -lpython"$ver" -Wl,-rpath,"$libdir" \
  >> "$report" 2>&1 || launcher=""
rm -f "$src"
candidates=(
  "as is||$python"
  "caffe.init_log() first (glog initialised, as the caffe tool does)|CO2FI_CAFFE_INIT_LOG=1|$python"
  "glog to stderr, every level|GLOG_logtostderr=1 GLOG_minloglevel=0|$python"
  "init_log + glog to stderr|CO2FI_CAFFE_INIT_LOG=1 GLOG_logtostderr=1|$python"
  "libgcc_s preloaded (C++ unwinder before libunwind)|LD_PRELOAD=libgcc_s.so.1|$python"
  "x86 shadow stack off (glibc tunable)|GLIBC_TUNABLES=glibc.cpu.x86_shstk=off|$python"
)
[ -n "$launcher" ] && candidates+=("launcher with the runtime in libpython$ver.so||$launcher"
  "launcher + init_log|CO2FI_CAFFE_INIT_LOG=1|$launcher")
chosen=""
found=0
for c in "${candidates[@]}"; do
  IFS='|' read -r label assigns interp <<< "$c"
  {
    step "candidate: $label ($assigns $interp)"
    # shellcheck disable=SC2086
    timeout 120 env $assigns "$interp" -X faulthandler "$smoke" --mode "$mode" 2>&1 | tail -6
    rc=${PIPESTATUS[0]}
    echo "rc $rc"
  } >> "$report" 2>&1
  if [ "$rc" = 0 ] && grep -q "smoke: PASS" <(tail -4 "$report"); then
    chosen="$assigns $interp"; found=1; break
  fi
done
rm -f "$net"
chosen=${chosen# }
step "chosen: ${chosen:-none}" >> "$report"
[ "$found" = 1 ] || chosen=""
echo "RUNNER=$chosen"
