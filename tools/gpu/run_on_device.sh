#!/usr/bin/env bash
# Issue 6 on the GPU machine in one or two device-tool calls (docs/GPU.md). From the repo root,
# with .device carried (tools/gpu/make_bundle.sh made it here):
#
#   call 1: bash tools/gpu/run_on_device.sh build,check         (carry: [".device"])
#   call 2: bash tools/gpu/run_on_device.sh build,bench         (carry: [".device"])
#   or one: bash tools/gpu/run_on_device.sh all                 (= build,check,bench)
#
# Phases: build = tools/gpu/device_build.sh (skipped when this machine already has the build:
# a warm machine from the call before); check = tools/gpu/check_gpu_vs_cpu.py, every small-preset
# net GPU vs CPU + 300 training iterations on the GPU; bench = tools/gpu/bench_caffe_vs_pytorch.py,
# paper preset, batch 16. Everything ends within CO2FI_DEADLINE_S seconds (default 560) of the
# start: a phase gets what is left. $OUT receives at most 6 files: run_on_device.log,
# gpu-check.md, gpu-bench-<gpu>.md, gpu-bench.json, logs.tar.gz (build logs, device_query).
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
phases=${1:-all}
[ "$phases" = all ] && phases=build,check,bench
out=${OUT:-/tmp/co2fi-out}
prefix=${CO2FI_PREFIX:-/opt/co2fi}
deadline=$(( $(date +%s) + ${CO2FI_DEADLINE_S:-560} ))
mkdir -p "$out"
logs=$prefix/run-logs
mkdir -p "$logs"
exec > >(tee -a "$out/run_on_device.log") 2>&1
export PATH="$PATH:/usr/local/cuda/bin" PYTHONUNBUFFERED=1
status=0
left() { echo $(( deadline - $(date +%s) )); }
say() { echo "run_on_device: [$(date +%H:%M:%S), $(left) s left] $*"; }

say "phases $phases; repo $repo; $(nvidia-smi -L 2>&1 | head -1)"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm \
  --format=csv 2>&1 | tee "$logs/nvidia-smi.txt"

if [[ ",$phases," == *",build,"* ]]; then
  if [ -f "$prefix/env.sh" ] && (source "$prefix/env.sh" && python3 tools/gpu/smoke_caffe.py \
      --mode gpu >/dev/null 2>&1); then
    say "build: this machine already has $(grep CO2FI_CAFFE_PREFIX= "$prefix/env.sh")"
  else
    say "build: tools/gpu/device_build.sh"
    OUT=$logs timeout "$(left)" tools/gpu/device_build.sh --prefix "$prefix" --cuda on \
      --cuda-arch 90 || { status=1; say "build FAILED (logs.tar.gz: device_build.log, caffe-build.log)"; }
  fi
fi
if [ -f "$prefix/env.sh" ]; then
  # shellcheck disable=SC1091
  source "$prefix/env.sh"
else
  say "no build at $prefix (env.sh missing): check and bench skipped"
  phases=build
  status=1
fi

if [[ ",$phases," == *",check,"* ]]; then
  t=$(( $(left) - 20 ))
  [[ ",$phases," == *",bench,"* ]] && t=$(( t / 2 ))
  say "check: GPU vs CPU, every small-preset net, + training ($t s at most)"
  timeout "$t" python3 tools/gpu/check_gpu_vs_cpu.py --mode gpu-vs-cpu --train-iters 300 \
    --report "$out/gpu-check.md" || { status=1; say "check FAILED or timed out"; }
fi

if [[ ",$phases," == *",bench,"* ]]; then
  t=$(( $(left) - 15 ))
  say "bench: paper preset, batch 16 ($t s at most)"
  timeout "$t" python3 tools/gpu/bench_caffe_vs_pytorch.py --device cuda --size paper \
    --batch 16 --iters 10 --warmup 3 --timeout 150 --json "$out/gpu-bench.json" \
    || { status=1; say "bench FAILED or timed out"; }
  for f in docs/benchmarks/gpu-*.md; do [ -f "$f" ] && cp "$f" "$out/gpu-bench-$(basename "$f" .md | cut -c5-).md"; done
fi

tar -C "$logs" -czf "$out/logs.tar.gz" . 2>/dev/null || true
say "done, status $status; files in \$OUT: $(ls "$out" | tr '\n' ' ')"
for f in "$out"/gpu-check.md "$out"/gpu-bench-*.md; do
  [ -f "$f" ] && { echo "==== $(basename "$f")"; head -c 6000 "$f"; }
done
exit "$status"
