#!/usr/bin/env bash
# One prepared run for a GPU machine: build with CUDA, run the gpu suite,
# benchmark what exists, print one short table. Full log: $OUT/gpu-run.log
# when OUT is set (the device tool's output folder), else <build>/gpu-run.log.
# Budget: under 8 minutes on one H200, build included: each stage has its
# own timeout, clipped to a global deadline (KPO_GPU_RUN_SECONDS, default
# 450 s); a stage that no longer fits is reported as not run, never hung.
# Stages run in order of what a first GPU session most needs: the suite's
# verdicts, then the model benchmarks, then the component benchmarks.
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
deadline=$(( start + ${KPO_GPU_RUN_SECONDS:-450} ))
jobs=$(nproc 2>/dev/null || echo 4)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
PATH=$PATH:/usr/local/cuda/bin

say() { echo "== $*" | tee -a "$log"; }
# stage NAME SECONDS CMD...: run with a timeout, log everything, note the outcome.
stage() {
  local name=$1 limit=$2; shift 2
  local left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 15 ]; then
    say "$name: not run, ${left}s left of the budget"
    printf 'STAGE|%s|NOT RUN (out of time)|-\n' "$name" >>"$table"
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
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

# The GPU image has CUDA, meson and ninja but not the project's C libraries
# and no network: use the Debian packages carried in .gpu-debs/ (made here
# by tests/gpu/fetch-debs.sh) from a private sysroot when they are missing.
if ! pkg-config --exists cmocka inih libcjson libpcre2-8 2>/dev/null; then
  if [ -d "$root/.gpu-debs" ]; then
    source "$root/tests/gpu/sysroot.sh"
    gpu_sysroot_setup "$root/.gpu-debs" "$build/sysroot" >>"$log" 2>&1
    say "using the carried Debian packages from $build/sysroot"
  else
    say "no cmocka/inih/cJSON/PCRE2 here and no .gpu-debs/ carried (run tests/gpu/fetch-debs.sh first)"
  fi
fi

# The pytest suites need pytest and h5py: take the first python3 that has them.
python=/usr/bin/python3
for p in $(type -a -P python3) /usr/bin/python3; do
  "$p" -c 'import pytest, h5py, numpy' 2>/dev/null && { python=$p; break; }
done

bench=""
reconfigure=(); [ -d "$build/meson-private" ] && reconfigure=(--reconfigure)
setup=(meson setup "${reconfigure[@]}" "$build" "$root" -Dcuda=enabled -Dnccl=enabled
       -Dbuildtype=release -Dpython="$python")
# A failed configure leaves a half-made build dir: clear it (not the
# sysroot or the log) before trying again.
clear_build() {
  find "$build" -mindepth 1 -maxdepth 1 ! -name sysroot ! -name gpu-run.log -exec rm -rf {} +
}
# Open MPI and HDF5 are optional: without them the NCCL and train tests skip,
# the rest still runs.
if stage configure 90 "${setup[@]}" ||
   { clear_build; setup=(meson setup "$build" "$root" -Dcuda=enabled -Dnccl=enabled
                         -Dbuildtype=release -Dpython="$python" -Dmpi=disabled -Dhdf5=disabled)
     stage configure-without-mpi-hdf5 60 "${setup[@]}"; }; then
  stage build 240 ninja -C "$build" -j "$jobs" && bench=$build/tests/gpu/bench_gpu
  suite_rc=1
  [ -n "$bench" ] && { stage gpu-suite 150 meson test -C "$build" --suite gpu --print-errorlogs -v; suite_rc=$?; }
  # A failing suite on its first GPU run: memcheck names the first bad
  # access of the model's and the attention's tests (slow, so only then).
  if [ -n "$bench" ] && [ "$suite_rc" != 0 ] && command -v compute-sanitizer >/dev/null; then
    for t in test_gpu_attention test_gpu_model; do
      stage "memcheck-$t" 60 compute-sanitizer --tool memcheck --error-exitcode 1 \
        --print-limit 20 "$build/tests/gpu/$t"
    done
  fi
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

# bench NAME SECONDS CMD...: a stage whose ROW| lines go into the table.
bench() {
  local before=$(grep -c '^ROW|' "$log")
  stage "$@"
  rows $((before + 1))
}
gb=$build/tests/gpu
# The model (src/model/cuda) on random weights of the published shapes:
# a learner update at the paper's length (1024-token prompt + 4096-token
# response) with recomputation, and rollout decoding (bench_gpu_model.c
# states the FLOP formula and the bandwidth bound).
if [ -x "$gb/bench_gpu_model" ]; then
  bench train-4b 90 "$gb/bench_gpu_model" train 4b 1 5120 1
  bench decode-4b 60 "$gb/bench_gpu_model" decode 4b 1 8 64 256
  bench train-0.6b 60 "$gb/bench_gpu_model" train 0.6b 8 1024 0
  bench decode-0.6b 45 "$gb/bench_gpu_model" decode 0.6b 1 8 64 256
else
  printf 'STAGE|bench-model|NOT RUN (needs the full build)|-\n' >>"$table"
fi

# Components: GEMM and attention TFLOP/s, the fused log-prob, the filter,
# NCCL (all-reduce, bf16 broadcast, the 4B weight sync).
if [ -x "$gb/bench_gpu_kernels" ]; then
  bench bench-kernels 60 "$gb/bench_gpu_kernels"
  [ -x "$gb/bench_gpu_logprob" ] && bench bench-logprob 45 "$gb/bench_gpu_logprob"
else
  printf 'STAGE|bench-kernels|NOT RUN (needs the full build)|-\n' >>"$table"
fi
if [ -n "$bench" ]; then
  bench bench-filter 60 "$bench" filter
  if [ "$bench" = "$gb/bench_gpu" ] && command -v mpirun >/dev/null; then
    bench bench-nccl 60 mpirun -np "$n_gpus" "$bench" nccl
  else
    printf 'STAGE|bench-nccl|NOT RUN (needs the full build and mpirun)|-\n' >>"$table"
  fi
fi

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
} | tee -a "$log" "$log_dir/gpu-table.txt"
status=0
grep -q '^STAGE|.*FAILED' "$table" && status=1
rm -f "$table" "$table.notes"
exit $status
