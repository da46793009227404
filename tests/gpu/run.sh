#!/usr/bin/env bash
# One prepared run for a GPU machine: build with CUDA, run the gpu suite,
# benchmark what exists, print one short table. Full log: $OUT/gpu-run.log
# when OUT is set (the device tool's output folder), else <build>/gpu-run.log.
# Budget: well under 8 minutes on one H200 (each stage has its own timeout).
#
#   tests/gpu/run.sh [build-dir]        (default: build-gpu in the repo root)
#
# If the full meson build cannot be configured (a GPU image without the
# project's system libraries: cmocka, MPI, HDF5, inih, cJSON, PCRE2, a
# BLAS), it says so and falls back to compiling the filter benchmark
# directly with nvcc and cc, so the kernel is still measured.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-gpu}
log_dir=${OUT:-$build}
mkdir -p "$build" "$log_dir"
log=$log_dir/gpu-run.log
table=$(mktemp)
: >"$log"
start=$(date +%s)
jobs=$(nproc 2>/dev/null || echo 4)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
PATH=$PATH:/usr/local/cuda/bin

say() { echo "== $*" | tee -a "$log"; }
# stage NAME SECONDS CMD...: run with a timeout, log everything, note the outcome.
stage() {
  local name=$1 limit=$2; shift 2
  say "$name: $*"
  local t0=$(date +%s)
  timeout "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  say "$name: exit $rc after $(( $(date +%s) - t0 ))s"
  printf 'STAGE|%s|%s|%ss\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")" \
    "$(( $(date +%s) - t0 ))" >>"$table"
  return $rc
}
rows() { grep '^ROW|' "$log" | tail -n +"$1" >>"$table"; }

say "kpo gpu run: $(date -u +%FT%TZ) in $root, build $build"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
    || echo "nvidia-smi: not available"; nvcc --version | tail -2; } >>"$log" 2>&1
n_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[ "${n_gpus:-0}" -ge 1 ] || n_gpus=1

bench=""
reconfigure=(); [ -d "$build/meson-private" ] && reconfigure=(--reconfigure)
if stage configure 180 meson setup "${reconfigure[@]}" "$build" "$root" -Dcuda=enabled \
     -Dnccl=enabled -Dbuildtype=release; then
  stage build 300 ninja -C "$build" -j "$jobs" && bench=$build/tests/gpu/bench_gpu
  [ -n "$bench" ] && stage gpu-suite 150 meson test -C "$build" --suite gpu --print-errorlogs -v
  grep -E '^(Ok|Fail|Skipped|Timeout): |^(gpu_|[a-z]+ *(/plain)? +[0-9]+ tokens|no usable GPU|survivor|NCCL comm)' "$log" \
    | awk '!seen[$0]++' | sed "s/^/    /" | tail -20 >"$table.notes"
else
  say "meson could not configure the full project here; building the filter benchmark alone"
  fb=$build/fallback; mkdir -p "$fb"
  printf '#define KPO_HAVE_CUDA 1\n#define KPO_HAVE_MPI 0\n#define KPO_HAVE_NCCL 0\n' >"$fb/kpo_config.h"
  s=$root/src
  stage fallback-build 200 bash -c "
    nvcc -O3 -std=c++17 --fmad=false -gencode 'arch=compute_90,code=[sm_90,compute_90]' \
      -I$fb -I$s -c $s/filter/filter_cuda.cu -o $fb/filter_cuda.o &&
    nvcc -O3 -std=c++17 -gencode 'arch=compute_90,code=[sm_90,compute_90]' \
      -I$fb -I$s -c $s/cuda/cuda_probe.cu -o $fb/cuda_probe.o &&
    cc -O2 -std=c11 -D_XOPEN_SOURCE=700 -I$fb -I$s -I/usr/local/cuda/include \
      $root/tests/gpu/bench_gpu.c $s/filter/filter.c $s/filter/filter_config.c \
      $s/filter/innov_stats.c $s/core/error.c $s/core/rng.c $fb/filter_cuda.o $fb/cuda_probe.o \
      -L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 -lcudart -lstdc++ -lm \
      -o $fb/bench_gpu" && bench=$fb/bench_gpu
  printf 'STAGE|gpu-suite|NOT RUN (no full build)|-\n' >>"$table"
fi

if [ -n "$bench" ]; then
  before=$(grep -c '^ROW|' "$log")
  stage bench-filter 120 "$bench" filter
  rows $((before + 1))
  if [ "$bench" = "$build/tests/gpu/bench_gpu" ] && command -v mpirun >/dev/null; then
    before=$(grep -c '^ROW|' "$log")
    stage bench-nccl 120 mpirun -np "$n_gpus" "$bench" nccl
    rows $((before + 1))
  else
    printf 'STAGE|bench-nccl|NOT RUN (needs the full build and mpirun)|-\n' >>"$table"
  fi
fi

# The CUDA model's kernels (src/model/cuda): cuBLASLt GEMM TFLOP/s at
# Qwen3-4B shapes, 4096 tokens.
if [ -x "$build/tests/gpu/bench_gpu_kernels" ]; then
  before=$(grep -c '^ROW|' "$log")
  stage bench-kernels 120 "$build/tests/gpu/bench_gpu_kernels"
  rows $((before + 1))
else
  printf 'STAGE|bench-kernels|NOT RUN (needs the full build)|-\n' >>"$table"
fi

# TODO(cuda model issue): when the full CUDA model exists, add here, each as a
# stage that prints ROW| lines measured by a program, never typed in:
#  - train-step tokens/s and MFU on random Qwen3-0.6B- and 4B-shaped models
#    (state the FLOP formula, e.g. 6 N tokens + attention 12 L d T per token,
#    against the measured bf16 matrix rate);
#  - decode tokens/s at batch 1, 8, 64, 256 against the HBM bound
#    (weight + KV bytes read per step / measured copy bandwidth);
#  - weight broadcast GB/s of the 4B model in bf16 between two GPUs.

{
  echo
  echo "kpo gpu run on: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" \
       "(${n_gpus} GPU(s)), $(( $(date +%s) - start ))s total; full log: $log"
  printf '%-44s %-12s %-10s %s\n' "what" "value" "unit" "note"
  while IFS='|' read -r kind a b c d; do
    if [ "$kind" = STAGE ]; then printf '%-44s %-23s %s\n' "stage $a" "$b" "$c"
    else printf '%-44s %-12s %-10s %s\n' "$a" "$b" "$c" "$d"; fi
  done <"$table"
  [ -s "$table.notes" ] && { echo "gpu suite notes:"; cat "$table.notes"; }
} | tee -a "$log"
status=0
grep -q '^STAGE|.*FAILED' "$table" && status=1
rm -f "$table" "$table.notes"
exit $status
