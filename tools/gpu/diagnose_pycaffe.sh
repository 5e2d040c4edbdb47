#!/usr/bin/env bash
# Why does pycaffe crash on this machine, and which interpreter runs it? Run after
# `source $PREFIX/env.sh` (tools/gpu/device_build.sh), from the repo root, when the smoke test
# fails. Appends its findings to REPORT and prints, as its last line, `PYTHON=<path>`: the first
# interpreter under which tools/gpu/smoke_caffe.py passes in MODE (empty when none does).
#
# Usage: tools/gpu/diagnose_pycaffe.sh REPORT [MODE=gpu] [PYTHON=python3]
#
# Seen on the lent H200 (Ubuntu 24.04, 2026-11-29): `caffe device_query` ran, `import caffe`
# ran, and the first caffe.Net segfaulted. Ubuntu's python3.12 is a static interpreter (no
# libpython3.12.so.1.0 among its libraries) while our libcaffe and _caffe.so link
# libpython3.12.so.1.0 (BUILD_python_layer), so the process holds two copies of the runtime.
# The candidate fix tried here: a launcher linked to libpython3.12.so (Py_BytesMain), placed
# beside the interpreter so that its virtual environment (pyvenv.cfg) still applies.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
report=${1:?usage: diagnose_pycaffe.sh REPORT [MODE] [PYTHON]}
mode=${2:-gpu}
python=$(command -v "${3:-python3}")
smoke=$repo/tools/gpu/smoke_caffe.py
step() { echo; echo "## $*"; }

{
  echo "# pycaffe diagnosis ($(date -u +%FT%TZ))"
  step "interpreter"
  echo "$python -> $(readlink -f "$python")"
  ldd "$(readlink -f "$python")" | grep -iE 'python|not found' || echo "(no libpython: a static interpreter)"
  "$python" -c "import sysconfig as s; print('LDLIBRARY', s.get_config_var('LDLIBRARY'), 'Py_ENABLE_SHARED', s.get_config_var('Py_ENABLE_SHARED'), 'LIBDIR', s.get_config_var('LIBDIR'))"
  so=$("$python" -c "import importlib.util as u; print(u.find_spec('caffe._caffe').origin)" 2>&1)
  step "_caffe.so: $so"
  ldd "$so" 2>&1 | grep -iE 'python|caffe|boost|protobuf|cublas|curand|cudart|glog|not found'
  step "step by step (faulthandler)"
  timeout 60 "$python" -X faulthandler - <<'EOF' 2>&1 | tail -40
import os, sys, tempfile
print("import caffe", flush=True); import caffe
print("set_mode_cpu", flush=True); caffe.set_mode_cpu()
print("set_random_seed", flush=True); caffe.set_random_seed(0)
net = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
f = tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False); f.write(net); f.close()
print("caffe.Net (Input only)", flush=True); n = caffe.Net(f.name, caffe.TEST)
print("forward", flush=True); n.forward()
print("blob data", flush=True); print(n.blobs["x"].data.shape)
print("OK", flush=True)
EOF
  echo "rc ${PIPESTATUS[0]}"
  step "smoke --mode cpu with no GPU visible (CUDA_VISIBLE_DEVICES='')"
  CUDA_VISIBLE_DEVICES= timeout 60 "$python" -X faulthandler "$smoke" --mode cpu 2>&1 | tail -15
  step "native backtrace (cuda-gdb, smoke --mode cpu)"
  if command -v cuda-gdb >/dev/null; then
    timeout 120 cuda-gdb -q -batch -ex run -ex bt -ex "info sharedlibrary" \
      --args "$python" "$smoke" --mode cpu 2>&1 | grep -vE '^\[(New|Thread)|^warning: ' | tail -80
  else
    echo "cuda-gdb not found"
  fi
} >> "$report" 2>&1

chosen=""
if timeout 120 "$python" "$smoke" --mode "$mode" >> "$report" 2>&1; then
  chosen=$python
else
  # A launcher with the runtime in libpython (one copy), in the interpreter's own bin/.
  inc=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  libdir=$("$python" -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
  ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  launcher=$(dirname "$python")/python$ver-shared-libpython
  src=$(mktemp --suffix=.c)
  printf '#include <Python.h>\nint main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n' > "$src"
  {
    step "launcher $launcher (linked to $libdir/libpython$ver.so)"
    if gcc -O2 -o "$launcher" "$src" -I"$inc" -L"$libdir" -lpython"$ver" -Wl,-rpath,"$libdir"; then
      "$launcher" -c "import sys; print(sys.executable, sys.prefix)"
      timeout 120 "$launcher" -X faulthandler "$smoke" --mode "$mode" 2>&1 | tail -12
      [ "${PIPESTATUS[0]}" = 0 ] && chosen=$launcher
    fi
  } >> "$report" 2>&1
  rm -f "$src"
fi
step "chosen interpreter: ${chosen:-none}" >> "$report"
echo "PYTHON=$chosen"
