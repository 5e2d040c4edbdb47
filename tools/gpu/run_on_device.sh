#!/usr/bin/env bash
# Everything issue 15 asks of the GPU machine, in ONE device-tool call (docs/GPU.md). From the
# repo root, with .device carried (tools/gpu/make_bundle.sh made it here):
#
#   bash tools/gpu/run_on_device.sh all        (carry: [".device"], timeout_s: 540)
#   all = build,check,bench,data; any comma-separated subset runs those phases only.
#
# Phases, in order of what matters most if time runs out:
#   build  tools/gpu/device_build.sh with every core: Boost.Python for the device's python3,
#          our CUDA Caffe (sm_90 + PTX) from the bundle, `caffe device_query`, the smoke test
#          (skipped when this machine already has the build: a warm machine)
#   check  tools/gpu/check_gpu_vs_cpu.py: every small-preset net forward + backward in GPU mode
#          against CPU mode (same weights and inputs; Python layers inside), then
#          CO2FI_TRAIN_ITERS (200) training iterations of baseline_rgb and co2fi_rgb on the GPU
#          (the default loss scale; under the literal 1/N reading, --class-normalization, the
#          CO2FI loss does not move in 200 iterations, on the CPU either: docs/REPRODUCTION.md)
#   bench  tools/gpu/bench_caffe_vs_pytorch.py: paper preset, batch 16, fp32: Caffe's baseline
#          VGG-16 (RGB, flow), CO2FI and CO2FI+ASYN against a PyTorch VGG-16 training step
#   data   tools/bench_data.py --layer-only: our data layer with the machine's cores against
#          the GPU's images/s from the bench
# After the build, pycaffe's smoke test picks the interpreter: python3, or when pycaffe crashes
# under it, what tools/gpu/diagnose_pycaffe.sh finds (its findings: pycaffe-diagnosis.md).
# Every phase gets a share of CO2FI_DEADLINE_S (default 500 s from the start) and writes its
# results under $OUT as it goes, so a call cut short still returns what it measured. $OUT gets
# at most 8 files (all the device tool returns): run_on_device.log, timings.txt, gpu-check.md,
# gpu-bench.md, gpu-bench.json, gpu-data.txt, pycaffe-diagnosis.md, logs.tar.gz (build logs,
# device_query, smoke test, nvidia-smi, the CPU and package inventory).
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
phases=${1:-all}
[ "$phases" = all ] && phases=build,check,bench,data
out=${OUT:-/tmp/co2fi-out}
prefix=${CO2FI_PREFIX:-/opt/co2fi}
t_start=$(date +%s)
deadline=$(( t_start + ${CO2FI_DEADLINE_S:-500} ))
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

say "phases $phases; repo $repo (git $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo n/a)); $(nvidia-smi -L 2>&1 | head -1)"
{
  nvidia-smi 2>&1
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm \
    --format=csv 2>&1
  echo "== cpu"; nproc; grep -m1 'model name' /proc/cpuinfo; free -g
  echo "== os"; cat /etc/os-release 2>/dev/null | head -3; uname -a; ldd --version 2>&1 | head -1
  echo "== tools"; command -v nvcc && nvcc --version | tail -2; cmake --version | head -1
  g++ --version | head -1
  echo "== python"; python3 --version; python3 -m pip list 2>/dev/null \
    | grep -iE '^(torch|numpy|protobuf|six|opencv|h5py|nvidia-(cublas|curand|cudnn))' || true
} > "$logs/machine.txt" 2>&1
head -20 "$logs/machine.txt"

if has build; then
  begin "build: tools/gpu/device_build.sh ($(nproc) jobs)"
  if [ -f "$prefix/env.sh" ] && (source "$prefix/env.sh" && python3 tools/gpu/smoke_caffe.py \
      --mode gpu >/dev/null 2>&1); then
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
  GLOG_minloglevel=0 timeout 60 caffe device_query -gpu 0 > "$logs/device_query.txt" 2>&1
  say "caffe device_query: rc $?"; grep -E "Device id|Major|Minor|Name|Total global" "$logs/device_query.txt"
  if timeout 120 python3 tools/gpu/smoke_caffe.py --mode gpu > "$logs/smoke.txt" 2>&1; then
    runner=(python3)
  else
    begin "pycaffe fails under python3 (rc $?): tools/gpu/diagnose_pycaffe.sh"
    line=$(timeout "$(( $(left) / 3 ))" bash tools/gpu/diagnose_pycaffe.sh \
      "$out/pycaffe-diagnosis.md" gpu python3 | tail -1)
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
  t=$(( $(left) / 3 )); [ "$t" -gt 200 ] && t=200
  begin "check: GPU vs CPU, every small-preset net, + $train_iters training iterations ($t s at most)"
  timeout "$t" env "${runner[@]}" tools/gpu/check_gpu_vs_cpu.py --mode gpu-vs-cpu \
    --train-iters "$train_iters" --train-variant baseline_rgb --train-variant co2fi_rgb \
    --report "$out/gpu-check.md"
  rc=$?; end check $rc
  [ $rc = 0 ] || { status=1; say "check FAILED or timed out (rc $rc)"; }
fi

if has bench; then
  t=$(( $(left) - 10 )); has data && t=$(( t - 45 ))
  nets=()
  bench_runner=("${runner[@]}")
  [ ${#runner[@]} -gt 0 ] || { nets=(--nets ""); bench_runner=(python3); }   # PyTorch alone
  begin "bench: paper preset, batch 16 ($t s at most)"
  timeout "$t" env "${bench_runner[@]}" tools/gpu/bench_caffe_vs_pytorch.py --device cuda --size paper \
    --batch 16 --iters 10 --warmup 3 --timeout 120 --out "$out/gpu-bench.md" \
    --json "$out/gpu-bench.json" "${nets[@]}"
  rc=$?; end bench $rc
  [ $rc = 0 ] || { status=1; say "bench FAILED or timed out (rc $rc)"; }
fi

if has data; then
  t=$(( $(left) - 5 ))
  workers=$(( $(nproc) - 2 )); [ "$workers" -lt 1 ] && workers=1
  begin "data: data layer with $workers workers against the GPU's images/s ($t s at most)"
  bench_json=()
  [ -f "$out/gpu-bench.json" ] && bench_json=(--gpu-bench "$out/gpu-bench.json")
  timeout "$t" python3 tools/bench_data.py --layer-only --workers "$workers" --seconds 6 \
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
