#!/usr/bin/env bash
# Everything issue 20 asks of the GPU machine, in ONE device-tool call of at most 8 minutes
# (docs/GPU.md). From the repo root, with .device carried (tools/gpu/make_bundle.sh made it):
#
#   CO2FI_DEADLINE_S=470 bash tools/gpu/run_on_device.sh all     (carry: [".device"], timeout_s: 540)
#   all = build,check,bench,claims; any comma-separated subset (and `data`) runs those only.
#
# Phases, in order of what matters most if time runs out:
#   build  with .device/runtime.tar.xz (tools/gpu/make_runtime.sh, made here): unpack it
#          (tools/gpu/use_runtime.sh): our CUDA Caffe, its libraries, glibc and a Python, only
#          the driver and CUDA 13's cudart/cuBLAS/cuRAND taken from this machine; without it (or
#          CO2FI_BUILD_ON_DEVICE=1): tools/gpu/device_build.sh with every core from the bundle
#          (Boost.Python for the device's python3, our CUDA Caffe for sm_90 + PTX; skipped when
#          this machine already has the build). Then `caffe device_query` and the smoke test
#   check  (a) tools/gpu/check_gpu_vs_cpu.py: every small-preset net forward + backward in GPU
#          mode against CPU mode (same weights and inputs; Python layers inside; tolerance:
#          rel. L2 <= 1e-4 and max rel. <= 1e-3, or max abs <= 1e-7), then (b) CO2FI_TRAIN_ITERS
#          (200) training iterations of baseline_rgb and co2fi_rgb on the GPU, the loss falling
#   bench  (c) tools/gpu/bench_caffe_vs_pytorch.py: paper preset, batch 16, fp32: Caffe's
#          baseline VGG-16 (RGB, flow), CO2FI and CO2FI+ASYN against a PyTorch VGG-16 step
#   claims (d) tools/claims.py --gpu 0 (what `make claims CLAIMS_ARGS="--gpu 0"` runs; make would
#          first try pip, which the GPU machine lacks) with the time left, seeds one after the
#          other, claims.md copied to $OUT after each (it resumes where a call stopped)
#   data   tools/bench_data.py --layer-only: our data layer with the machine's cores (issue 15)
# With no GPU visible (nvidia-smi -L fails: `make gpu-rehearse`), the CUDA build is compiled but
# not run and every GPU part prints `SKIPPED (no GPU): ...`; what needs no GPU still runs, on the
# CPU: the smoke test, check in --mode cpu-vs-cpu (every net, the same training iterations on
# the CPU), the bench's Caffe worker on the tiny preset, claims' imports and its first minute.
# After the build, pycaffe's smoke test picks the interpreter: python3, or when pycaffe crashes
# under it, what tools/gpu/diagnose_pycaffe.sh finds (its findings: pycaffe-diagnosis.md).
# Every phase gets a share of CO2FI_DEADLINE_S (default 470 s from the start) and writes its
# results under $OUT as it goes, so a call cut short still returns what it measured: run_on_device.log,
# timings.txt, gpu-check.md, gpu-bench.md, gpu-bench.json, claims.md, claims.json,
# pycaffe-diagnosis.md (only when pycaffe fails the smoke test), logs.tar.gz (build logs,
# device_query, smoke test, nvidia-smi, the CPU and package inventory).
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
phases=${1:-all}
[ "$phases" = all ] && phases=build,check,bench,claims
out=${OUT:-/tmp/co2fi-out}
prefix=${CO2FI_PREFIX:-/opt/co2fi}
t_start=$(date +%s)
deadline=$(( t_start + ${CO2FI_DEADLINE_S:-470} ))
train_iters=${CO2FI_TRAIN_ITERS:-200}
mkdir -p "$out"
logs=$prefix/run-logs
mkdir -p "$logs"
exec > >(tee -a "$out/run_on_device.log") 2>&1
export PATH="$PATH:/usr/local/cuda/bin" PYTHONUNBUFFERED=1
status=0
left() { echo $(( deadline - $(date +%s) )); }
say() { echo "run_on_device: [$(date +%H:%M:%S), $(left) s left] $*"; }
has() { [[ ",$phases," == *",$1,"* ]]; }
phase_t0=0
begin() { phase_t0=$(date +%s); say "$1"; }
end() { echo "$1 $(( $(date +%s) - phase_t0 )) s rc=$2" >> "$out/timings.txt"; }

say "phases $phases; repo $repo (git $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo n/a)); $(nvidia-smi -L 2>/dev/null | head -1 || true)"
{
  nvidia-smi 2>&1
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm \
    --format=csv 2>&1
  echo "== cpu"; nproc; grep -m1 'model name' /proc/cpuinfo; free -g
  echo "== os"; cat /etc/os-release 2>/dev/null | head -3; uname -a; ldd --version 2>&1 | head -1
  echo "== tools"; command -v nvcc && nvcc --version | tail -2; cmake --version | head -1
  g++ --version | head -1
  echo "== python"; python3 --version; python3 -m pip list 2>/dev/null \
    | grep -iE '^(torch|numpy|protobuf|six|opencv|h5py|scipy|scikit-learn|matplotlib|tqdm|nvidia-(cublas|curand|cudnn))' || true
  echo "== libraries"; ls /usr/local/cuda*/lib64/lib{cudart,cublas,curand}.so.* 2>&1; ldconfig -p | grep -E 'libcuda\.so|libnvidia-ptxjit' 
} > "$logs/machine.txt" 2>&1
head -20 "$logs/machine.txt"

# A GPU, or a rehearsal (make gpu-rehearse): the CUDA build compiles, the GPU parts are skipped.
gpu=0
nvidia-smi -L > /dev/null 2>&1 && gpu=1
mode=gpu
skip() { say "SKIPPED (no GPU): $*"; echo "SKIPPED (no GPU): $*" >> "$out/timings.txt"; }
if [ "$gpu" = 0 ]; then
  mode=cpu
  export CO2FI_CUDA_COMPILE_ONLY=1
  say "no GPU visible (nvidia-smi -L fails): a rehearsal. The CUDA build is compiled, not run;" \
    "every GPU part is SKIPPED with a line, what needs no GPU runs on the CPU"
fi
python3 -c 'import torch' > /dev/null 2>&1 && has_torch=1 || has_torch=0

# This machine's own python3 (PyTorch's): the bench's PyTorch runs and the data phase use it.
export CO2FI_HOST_PYTHON=${CO2FI_HOST_PYTHON:-$(command -v python3 || true)}

if has build && [ -f "$repo/.device/runtime.tar.xz" ] && [ "${CO2FI_BUILD_ON_DEVICE:-0}" != 1 ]; then
  # The runtime made here (tools/gpu/make_runtime.sh): nothing compiled on this machine, nothing
  # of its userland used but the driver and the CUDA libraries.
  begin "build: none; the carried runtime .device/runtime.tar.xz (tools/gpu/use_runtime.sh)"
  timeout 180 tools/gpu/use_runtime.sh --prefix "$prefix"
  rc=$?
  end runtime $rc
  [ $rc = 0 ] || { status=1; rm -f "$prefix/env.sh"; say "runtime FAILED (rc $rc)"; }
elif has build; then
  begin "build: tools/gpu/device_build.sh ($(nproc) jobs)"
  if [ -f "$prefix/env.sh" ] && (source "$prefix/env.sh" && python3 tools/gpu/smoke_caffe.py \
      --mode "$mode" >/dev/null 2>&1); then
    say "build: this machine already has $(grep CO2FI_CAFFE_PREFIX= "$prefix/env.sh")"
    end build 0
  else
    OUT=$logs timeout "$(left)" tools/gpu/device_build.sh --prefix "$prefix" --cuda on \
      --cuda-arch 90 --jobs "$(nproc)" --no-smoke
    rc=$?
    end build $rc
    [ $rc = 0 ] || { status=1; say "build FAILED (rc $rc; logs.tar.gz: device_build.log, caffe-build.log)"; }
  fi
fi
runner=()     # how Python runs pycaffe here: [ENV=VALUE ...] INTERPRETER
if [ -f "$prefix/env.sh" ]; then
  # shellcheck disable=SC1091
  source "$prefix/env.sh"
  if [ "$gpu" = 1 ]; then
    GLOG_minloglevel=0 timeout 60 caffe device_query -gpu 0 > "$logs/device_query.txt" 2>&1
    say "caffe device_query: rc $?"; grep -E "Device id|Major|Minor|Name|Total global" "$logs/device_query.txt"
  else
    skip "caffe device_query -gpu 0"
  fi
  if timeout 120 python3 -X faulthandler tools/gpu/smoke_caffe.py --mode "$mode" > "$logs/smoke.txt" 2>&1; then
    runner=(python3)
    say "smoke test --mode $mode: $(grep -E 'smoke: (PASS|FAIL)' "$logs/smoke.txt")"
  else
    rc=$?
    tail -12 "$logs/smoke.txt"
    begin "pycaffe fails under python3 (rc $rc): tools/gpu/diagnose_pycaffe.sh"
    line=$(timeout "$(( $(left) / 3 ))" bash tools/gpu/diagnose_pycaffe.sh \
      "$out/pycaffe-diagnosis.md" "$mode" python3 | tail -1)
    end diagnose "$?"
    read -ra runner <<< "${line#RUNNER=}"
    say "pycaffe runs as: ${runner[*]:-nothing that was tried (pycaffe-diagnosis.md)}"
    [ ${#runner[@]} -gt 0 ] || status=1
  fi
else
  say "no build at $prefix (env.sh missing): nothing else can run"
  phases=build
  status=1
fi

if has check && [ ${#runner[@]} -gt 0 ]; then
  # At most a third of what is left: the bench matters as much.
  t=$(( $(left) / 3 )); [ "$t" -gt 170 ] && t=170
  if [ "$gpu" = 1 ]; then
    begin "check: GPU vs CPU, every small-preset net, + $train_iters training iterations ($t s at most)"
    check_args=(--mode gpu-vs-cpu --train-iters "$train_iters")
  else
    skip "check_gpu_vs_cpu.py --mode gpu-vs-cpu (every small-preset net) and $train_iters GPU iterations"
    begin "check, rehearsed on the CPU: --mode cpu-vs-cpu, every small-preset net, $train_iters CPU iterations ($t s at most)"
    check_args=(--mode cpu-vs-cpu --train-iters "$train_iters")
  fi
  timeout "$t" env "${runner[@]}" tools/gpu/check_gpu_vs_cpu.py "${check_args[@]}" \
    --train-variant baseline_rgb --train-variant co2fi_rgb --report "$out/gpu-check.md"
  rc=$?; end check $rc
  [ $rc = 0 ] || { status=1; say "check FAILED or timed out (rc $rc)"; }
fi

if has bench; then
  t=$(( $(left) - 10 )); has claims && t=$(( t * 2 / 3 )); has data && t=$(( t - 45 ))
  bench_runner=("${runner[@]}")
  if [ "$gpu" = 1 ]; then
    nets=()
    [ ${#runner[@]} -gt 0 ] || { nets=(--nets ""); bench_runner=(python3); }   # PyTorch alone
    bench_args=(--device cuda --size paper --batch 16 --iters 10 --warmup 3 --timeout 120 "${nets[@]}")
    begin "bench: paper preset, batch 16 ($t s at most)"
  else
    skip "bench_caffe_vs_pytorch.py --device cuda --size paper (Caffe and PyTorch on the GPU)"
    torch_arg=(--torch off); [ "$has_torch" = 1 ] && torch_arg=(--torch on)
    bench_args=(--device cpu --size tiny --batch 2 --iters 2 --warmup 1 --nets baseline_rgb
      --streams rgb --timeout 120 "${torch_arg[@]}")
    begin "bench, rehearsed on the CPU: tiny preset, baseline_rgb, PyTorch ${torch_arg[1]} ($t s at most)"
  fi
  if [ ${#bench_runner[@]} -gt 0 ]; then
    timeout "$t" env "${bench_runner[@]}" tools/gpu/bench_caffe_vs_pytorch.py "${bench_args[@]}" \
      --out "$out/gpu-bench.md" --json "$out/gpu-bench.json"
    rc=$?
  else
    rc=1
  fi
  end bench $rc
  [ $rc = 0 ] || { status=1; say "bench FAILED or timed out (rc $rc)"; }
fi

if has claims && [ ${#runner[@]} -gt 0 ]; then
  t=$(( $(left) - 15 )); has data && t=$(( t - 45 ))
  claims_out=$prefix/claims
  mkdir -p "$claims_out"
  if missing=$(env "${runner[@]}" -c "
import importlib.util as u
mods = ('cv2', 'scipy', 'sklearn', 'h5py', 'matplotlib', 'tqdm', 'co2fi_tools.claims')
print(' '.join(m for m in mods if u.find_spec(m.split('.')[0]) is None))" 2>&1) && [ -z "$missing" ]; then
    claims_args=(--out "$claims_out" --seeds "${CO2FI_CLAIMS_SEEDS:-3}" --flow farneback)
    [ "$gpu" = 1 ] && claims_args+=(--gpu 0)
    [ "$gpu" = 1 ] || { skip "tools/claims.py --gpu 0; its first $(( t < 60 ? t : 60 )) s on the CPU instead";
      [ "$t" -gt 60 ] && t=60; }
    begin "claims: tools/claims.py ${claims_args[*]} ($t s at most; resumes where it stopped)"
    # claims.md is rewritten after each seed: copied to $OUT as it goes.
    ( while sleep 10; do
        for f in claims.md claims.json; do
          [ -f "$claims_out/$f" ] && cp "$claims_out/$f" "$out/$f.tmp" && mv "$out/$f.tmp" "$out/$f"
        done
      done ) &
    copier=$!
    timeout "$t" env "${runner[@]}" tools/claims.py "${claims_args[@]}" > "$logs/claims.log" 2>&1
    rc=$?
    kill "$copier" 2>/dev/null; wait "$copier" 2>/dev/null
    for f in claims.md claims.json; do [ -f "$claims_out/$f" ] && cp "$claims_out/$f" "$out/$f"; done
    tail -5 "$logs/claims.log"
    end claims $rc
    # A timeout is the expected end of a run cut to the time left; it resumes next call.
    [ $rc = 0 ] || [ $rc = 124 ] || { status=1; say "claims FAILED (rc $rc; logs.tar.gz: claims.log)"; }
    [ $rc = 124 ] && say "claims: stopped at the deadline ($(ls -d "$claims_out"/seed* 2>/dev/null | wc -l) seed folders); rerun to resume"
  else
    say "claims: NOT RUN: this Python lacks ${missing:-?} (tools/claims.py needs them)"
    echo "claims not run: missing $missing" >> "$out/timings.txt"
  fi
fi

if has data; then
  t=$(( $(left) - 5 ))
  workers=$(( $(nproc) - 2 )); [ "$workers" -lt 1 ] && workers=1
  begin "data: data layer with $workers workers against the GPU's images/s ($t s at most)"
  bench_json=()
  [ -f "$out/gpu-bench.json" ] && bench_json=(--gpu-bench "$out/gpu-bench.json")
  timeout "$t" env -u PYTHONPATH -u LD_LIBRARY_PATH "$CO2FI_HOST_PYTHON" tools/bench_data.py --layer-only --workers "$workers" --seconds 6 \
    --work /tmp/co2fi-bench-data "${bench_json[@]}" > "$out/gpu-data.txt" 2>&1
  rc=$?; end data $rc
  cat "$out/gpu-data.txt"
  [ $rc = 0 ] || { status=1; say "data FAILED or timed out (rc $rc)"; }
fi

tar -C "$logs" -czf "$out/logs.tar.gz" . 2>/dev/null || true
say "done in $(( $(date +%s) - t_start )) s, status $status; \$OUT: $(ls "$out" | tr '\n' ' ')"
cat "$out/timings.txt" 2>/dev/null
for f in "$out"/gpu-check.md "$out"/gpu-bench.md; do
  [ -f "$f" ] && { echo "==== $(basename "$f")"; head -c 5000 "$f"; }
done
exit "$status"
