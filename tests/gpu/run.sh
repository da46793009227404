#!/usr/bin/env bash
# One prepared run for a GPU machine: build with CUDA, run the gpu suite,
# run the real job (`kpo train`, one step at the Qwen3-0.6B shape), benchmark
# the model and its kernels, run the same shapes in PyTorch
# (bench/torch_reference.py) and print one table with kpo / PyTorch ratios
# measured in this run. Full log: $OUT/gpu-run.log and the table
# $OUT/gpu-table.txt when OUT is set (the device tool's output folder), else
# in the build dir.
# Budget: under 9.5 minutes on one H200, build included: each stage has its
# own timeout, clipped to a global deadline (KPO_GPU_RUN_SECONDS, default
# 540 s); a stage that no longer fits is reported as not run, never hung.
# Stages run in order of what a GPU session most needs: the suite's
# verdicts, the real job, the model benchmarks, the kernels, the PyTorch
# reference, the long-response job, the filter and NCCL, and memcheck last.
#
#   tests/gpu/run.sh [build-dir]        (default: build-gpu in the repo root)
#   KPO_GPU_ONLY="gpu-suite,train-*-new" tests/gpu/run.sh   (only those stages)
#
# Carried next to the working tree (prepared HERE, docs/cuda.md):
#   .gpu-debs/   tests/gpu/fetch-debs.sh: the project's C libraries (cmocka,
#                inih, cJSON, PCRE2, OpenBLAS, Open MPI, HDF5), unpacked into
#                a private sysroot by tests/gpu/sysroot.sh
#   .gpu-data/   tests/gpu/prepare-data.sh: the Qwen tokenizer, the Qwen3
#                config.json files and a slice of DAPO-Math-17k, for the
#                `kpo train` stages (without it they are not run, and say so)
# NCCL and cuDNN are found on the image by sysroot.sh (gpu_find_nccl_cudnn).
#
# If the full meson build cannot be configured, it says so and falls back to
# compiling the filter benchmark directly with nvcc and cc, so the kernel is
# still measured.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-gpu}
log_dir=${OUT:-$build}
mkdir -p "$build" "$log_dir"
build=$(cd "$build" && pwd)
log=$log_dir/gpu-run.log
table=$(mktemp)   # STAGE| and ROW| lines, in order
refs=$(mktemp)    # REF| lines of the PyTorch reference
: >"$log"
: >"$log_dir/gpu-table.txt"
start=$(date +%s)
deadline=$(( start + ${KPO_GPU_RUN_SECONDS:-540} ))
jobs=${KPO_GPU_JOBS:-$(nproc 2>/dev/null || echo 4)}   # ninja's -j
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# A rank started without mpirun (kpo train, the gpu_train test) is an MPI
# singleton: no orted daemon for it (the carried one may not even start).
export OMPI_MCA_ess_singleton_isolated=1
export PYTHONUNBUFFERED=1
PATH=$PATH:/usr/local/cuda/bin
header=()         # lines for the table's head: what this run ran on

say() { echo "== $*" | tee -a "$log"; }
# not_run NAME WHY: a stage skipped for a reason other than time.
not_run() { say "$1: not run ($2)"; printf 'STAGE|%s|NOT RUN (%s)|-\n' "$1" "$2" >>"$table"; }
# selected NAME: whether KPO_GPU_ONLY (comma-separated shell patterns, e.g.
# "gpu-suite,train-*-new,decode-*") lets stage NAME run; the build always
# runs. Unset: every stage.
selected() {
  local pattern
  [ -z "${KPO_GPU_ONLY:-}" ] && return 0
  case $1 in configure*|build|fallback-build|model-init*) return 0 ;; esac
  for pattern in ${KPO_GPU_ONLY//,/ }; do
    # shellcheck disable=SC2254
    case $1 in $pattern) return 0 ;; esac
  done
  return 1
}
# stage NAME SECONDS CMD...: run with a timeout, log everything, note the outcome.
stage() {
  local name=$1 limit=$2; shift 2
  if ! selected "$name"; then
    printf 'STAGE|%s|NOT RUN (not in KPO_GPU_ONLY)|-\n' "$name" >>"$table"
    return 125
  fi
  local left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 15 ]; then
    say "$name: not run, ${left}s left of the budget"
    printf 'STAGE|%s|NOT RUN (out of time)|-\n' "$name" >>"$table"
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "$name: $* (timeout ${limit}s)"
  local t0 rc
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  say "$name: exit $rc after $(( $(date +%s) - t0 ))s"
  printf 'STAGE|%s|%s|%ss\n' "$name" \
    "$(case $rc in 0) echo ok ;; 124|137) echo "TIMED OUT (${limit}s)" ;; *) echo "FAILED (exit $rc)" ;; esac)" \
    "$(( $(date +%s) - t0 ))" >>"$table"
  return $rc
}
# bench NAME SECONDS CMD...: a stage whose ROW| lines go into the table and
# whose REF| lines (the PyTorch reference) into the join.
bench() {
  local before_row before_ref rc
  before_row=$(grep -c '^ROW|' "$log")
  before_ref=$(grep -c '^REF|' "$log")
  stage "$@"
  rc=$?
  grep '^ROW|' "$log" | tail -n +"$((before_row + 1))" >>"$table"
  grep '^REF|' "$log" | tail -n +"$((before_ref + 1))" >>"$refs"
  return $rc
}

say "kpo gpu run: $(date -u +%FT%TZ) in $root, build $build, budget $(( deadline - start ))s"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
    || echo "nvidia-smi: not available"; nvcc --version | tail -2; } >>"$log" 2>&1
gpu_line=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
n_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
header+=("GPU: ${gpu_line:-none seen by nvidia-smi} (${n_gpus:-0} GPU(s)); $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'no nvcc')")
[ "${n_gpus:-0}" -ge 1 ] || n_gpus=1

# The pytest suites and the run-file reader need pytest and h5py: take the
# first python3 that has them (the image's /opt/torch/.venv one).
# has_modules PYTHON MODULE...: all findable (not imported: torch and
# transformers take seconds to import).
has_modules() {
  local p=$1; shift
  "$p" -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in sys.argv[1:]))' \
    "$@" 2>/dev/null
}
pythons=$(type -a -P python3; echo /opt/torch/.venv/bin/python3 /usr/bin/python3)
python=/usr/bin/python3
for p in $pythons; do has_modules "$p" pytest h5py numpy && { python=$p; break; }; done
# The PyTorch reference: the first python3 with torch and transformers, else
# with torch alone (then the reference says "transformers missing").
torch_python=""
for p in $pythons; do has_modules "$p" torch transformers && { torch_python=$p; break; }; done
if [ -z "$torch_python" ]; then
  for p in $pythons; do has_modules "$p" torch && { torch_python=$p; break; }; done
fi
say "python for the suites: $python; for the PyTorch reference: ${torch_python:-none with torch}"

# The GPU image has CUDA, meson and ninja but not the project's C libraries
# and no network: use the Debian packages carried in .gpu-debs/ (made here
# by tests/gpu/fetch-debs.sh) from a private sysroot when they are missing.
source "$root/tests/gpu/sysroot.sh"
if ! pkg-config --exists cmocka inih libcjson libpcre2-8 2>/dev/null; then
  if [ -d "$root/.gpu-debs" ]; then
    gpu_sysroot_setup "$root/.gpu-debs" "$build/sysroot" >>"$log" 2>&1
    say "using the carried Debian packages from $build/sysroot"
  else
    say "no cmocka/inih/cJSON/PCRE2 here and no .gpu-debs/ carried (run tests/gpu/fetch-debs.sh first)"
  fi
fi
# NCCL (an unversioned libnccl.so for meson's find_library) and cuDNN (in
# the Python packages), wherever the image keeps them.
gpu_find_nccl_cudnn "$build/sysroot/gpu-libs" "${torch_python:-$python}" >>"$log" 2>&1
say "$GPU_NCCL_DESC"
say "$GPU_CUDNN_DESC"
header+=("$GPU_NCCL_DESC" "$GPU_CUDNN_DESC")

# What the kpo train stages read (tests/gpu/prepare-data.sh, carried).
data=$root/.gpu-data
if [ -f "$data/dapo_math_slice.jsonl" ] && [ -f "$data/qwen_tokenizer/vocab.json" ] &&
   [ -f "$data/qwen3-0.6b/config.json" ]; then
  header+=("data: $data (Qwen tokenizer, Qwen3 configs, $(wc -l <"$data/dapo_math_slice.jsonl") DAPO prompts)")
else
  data=""
  say "NO .gpu-data/ CARRIED: run tests/gpu/prepare-data.sh here and carry .gpu-data; the kpo train stages cannot run"
  header+=("data: .gpu-data/ ABSENT (tests/gpu/prepare-data.sh; carry .gpu-data): no kpo train stages")
fi

bench_bin=""
reconfigure=(); [ -d "$build/meson-private" ] && reconfigure=(--reconfigure)
setup=(meson setup "${reconfigure[@]}" "$build" "$root" -Dcuda=enabled -Dnccl=enabled
       -Dbuildtype=release -Dpython="$python")
# A failed configure leaves a half-made build dir: clear it (not the
# sysroot or the log) before trying again.
clear_build() {
  find "$build" -mindepth 1 -maxdepth 1 ! -name sysroot ! -name gpu-run.log ! -name gpu-table.txt \
    -exec rm -rf {} +
}
suite_rc=0
# Open MPI and HDF5 are optional: without them the NCCL and train tests skip,
# the rest still runs.
if stage configure 90 "${setup[@]}" ||
   { clear_build; setup=(meson setup "$build" "$root" -Dcuda=enabled -Dnccl=enabled
                         -Dbuildtype=release -Dpython="$python" -Dmpi=disabled -Dhdf5=disabled)
     stage configure-without-mpi-hdf5 60 "${setup[@]}"; }; then
  grep -E '^(Library|Run-time dependency|Found pkg-config|Has header "nccl).*' "$log" \
    | grep -i -E 'nccl|mpi|hdf5|cudnn' | awk '!seen[$0]++' | sed 's/^/   configure: /' | tee -a "$log"
  # ~10 s on the H200 machine's 16 cores; KPO_GPU_BUILD_SECONDS for a dry
  # run on a small machine.
  stage build "${KPO_GPU_BUILD_SECONDS:-240}" ninja -C "$build" -j "$jobs" &&
    bench_bin=$build/tests/gpu/bench_gpu
  if [ -n "$bench_bin" ]; then
    stage gpu-suite 150 meson test -C "$build" --suite gpu --print-errorlogs -v
    suite_rc=$?
  else
    not_run gpu-suite "the build failed"
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
      -o $fb/bench_gpu" && bench_bin=$fb/bench_gpu
  not_run gpu-suite "no full build"
fi

kpo=$build/kpo
gb=$build/tests/gpu
# Whether a GPU is usable at all, in kpo's own words: without one the GPU
# stages below are not run (each says why) rather than failing one by one.
gpu_why=""
if [ -x "$kpo" ]; then
  devices=$("$kpo" info 2>/dev/null | sed -n 's/^devices: //p')
  case $devices in
    "no usable GPU"*|"") gpu_why=${devices:-no usable GPU: kpo info says nothing} ;;
  esac
  header+=("kpo: $("$kpo" info 2>/dev/null | head -1); devices: ${devices:-?}")
elif [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -eq 0 ]; then
  gpu_why="no usable GPU: nvidia-smi lists none"
fi
[ -n "$gpu_why" ] && say "$gpu_why: the GPU stages are not run"

# The real job: kpo train at the Qwen3-0.6B shape, random weights from
# `kpo model init`, the Qwen tokenizer, DAPO prompts, the paper's config
# (base-paper.ini + is-kpo-weak.ini) on one GPU, one step. Its run file's
# /metrics/time_* give the phases.
train_model="" model_why=""
model_stage() {  # once: makes train_model, or says in model_why why not
  [ -n "$train_model" ] && return 0
  [ -n "$model_why" ] && return 1
  if [ -n "$gpu_why" ]; then model_why=$gpu_why
  elif [ -z "$data" ]; then model_why="no .gpu-data carried (tests/gpu/prepare-data.sh)"
  elif [ ! -x "$kpo" ]; then model_why="needs the full build"
  else
    local dir=$build/gpu-models/qwen3-0.6b
    rm -rf "$dir"
    stage model-init-0.6b 60 "$kpo" model init --out "$dir" --config "$data/qwen3-0.6b/config.json" \
      --dtype bf16 --seed 1 && { train_model=$dir; return 0; }
    model_why="kpo model init failed"
    return 1
  fi
  return 1
}
# runfile_rows NAME RUN_H5: the step's phases and throughput as ROW| lines.
runfile_rows() {
  "$python" - "$1" "$2" <<'EOF'
import math, sys
import h5py
name, path = sys.argv[1:3]
with h5py.File(path, "r") as f:
    m = f["metrics"]
    get = lambda k: float(m[k][-1]) if k in m else math.nan
    for k in ("time_rollout", "time_old_logprobs", "time_learn", "time_sync", "time_step"):
        print(f"ROW|{name} {k[5:]}|{get(k):.3f}|s|run.h5 /metrics/{k}")
    print(f"ROW|{name} response tokens/s|{get('tokens_per_second'):.4g}|tokens/s|"
          f"{get('tokens_response'):.0f} response tokens (mean length {get('response_length_mean'):.0f}), "
          f"{get('tokens_total'):.0f} tokens in all; GPU peak {get('gpu_memory_peak_gib'):.1f} GiB")
EOF
}
# The new rollout and attention paths (issues 14 and 15), off by default
# until a run like this one has checked them: split-KV decode, prompts
# through the flash kernel, decode steps as CUDA graphs, refilled slots,
# cuDNN's attention in training, recomputation only where memory needs it.
new_paths=(--set model.decode_attention=split --set model.prefill_attention=flash
           --set model.decode_graphs=true --set rollout.schedule=refill
           --set model.attention=cudnn --set learner.recompute=auto)
train_stage() {  # TAG PROMPTS GROUP NEW_TOKENS SECONDS [--set KEY=VALUE ...]
  local tag=$1 prompts=$2 group=$3 new=$4 limit=$5
  shift 5
  local name="kpo train 0.6b ${prompts}x${group} new ${new}"
  [ $# -gt 0 ] && name="$name new paths"
  if ! model_stage; then not_run "train-$tag" "$model_why"; return; fi
  local out=$build/gpu-runs/$tag
  rm -rf "$out"
  bench "train-$tag" "$limit" "$kpo" train "$root/configs/base-paper.ini" "$root/configs/is-kpo-weak.ini" \
    --set run.device=cuda --set "run.out=$out" --set run.steps=1 --set run.checkpoint_every=0 \
    --set "model.path=$train_model" --set "model.tokenizer=$data/qwen_tokenizer" \
    --set "data.train=$data/dapo_math_slice.jsonl" \
    --set "rollout.prompts_per_step=$prompts" --set "rollout.group_size=$group" \
    --set "rollout.max_new_tokens=$new" "$@"
  if [ -f "$out/run.h5" ] && runfile_rows "$name" "$out/run.h5" >"$build/rows.tmp" 2>>"$log"; then
    tee -a "$log" <"$build/rows.tmp" >>"$table"
  else  # no run file (or no h5py): the progress line has the step's time
    local line
    line=$(grep -E '^step +1/' "$log" | tail -1)
    say "train-$tag: no run-file metrics; progress line: ${line:-none}"
    [ -n "$line" ] && printf 'ROW|%s step|%s|s|progress line: %s\n' "$name" \
      "$(sed -E 's/.* ([0-9.]+)s .*/\1/' <<<"$line")" "$line" >>"$table"
  fi
}
train_stage 32x8x1024-new 32 8 1024 120 "${new_paths[@]}"
train_stage 32x8x1024 32 8 1024 150

# The model (src/model/cuda) on random weights of the published shapes:
# a learner update at the paper's length (1024-token prompt + 4096-token
# response) with recomputation, and rollout decoding (bench_gpu_model.c
# states the FLOP formula and the bandwidth bound).
if [ -n "$gpu_why" ]; then
  not_run bench-model "$gpu_why"
elif [ -x "$gb/bench_gpu_model" ]; then
  # Decode: the block kernel (the default) and split-KV, at 128 cached
  # tokens and at 4096 (4B at 256 x 4096 needs ~157 GB of KV: 128 there).
  bench decode-4b 60 "$gb/bench_gpu_model" decode 4b --attention block,split 1 8 64 256
  bench decode-4b-4096 60 "$gb/bench_gpu_model" decode 4b --attention block,split --context 4096 1 8 64 128
  bench decode-0.6b 45 "$gb/bench_gpu_model" decode 0.6b --attention block,split 1 8 64 256
  bench decode-0.6b-4096 60 "$gb/bench_gpu_model" decode 0.6b --attention block,split --context 4096 1 8 64 256
  # The same steps replayed as CUDA graphs (model.decode_graphs).
  bench decode-0.6b-graphs 45 "$gb/bench_gpu_model" decode 0.6b --attention block,split --graphs on 1 8 64 256
  bench decode-4b-graphs 60 "$gb/bench_gpu_model" decode 4b --attention block,split --graphs on 1 8 64 256
  bench decode-0.6b-4096-graphs 60 "$gb/bench_gpu_model" decode 0.6b --attention block,split --graphs on --context 4096 1 8 64 256
  # Prefill: prompts into empty slots through the decode attention (the
  # default) and through the flash kernel (model.prefill_attention = flash).
  bench prefill-0.6b 45 "$gb/bench_gpu_model" prefill 0.6b --prefill decode,flash 16x1024 64x256
  bench prefill-4b 60 "$gb/bench_gpu_model" prefill 4b --prefill decode,flash 16x1024 64x256
  bench train-4b 90 "$gb/bench_gpu_model" train 4b 1 5120 1
  bench train-4b-cudnn 90 "$gb/bench_gpu_model" train 4b 1 5120 1 --attention cudnn
  # What learner.recompute = auto picks on an H200 at this length (88 GiB).
  bench train-4b-cudnn-norecompute 90 "$gb/bench_gpu_model" train 4b 1 5120 0 --attention cudnn
  bench train-0.6b 60 "$gb/bench_gpu_model" train 0.6b 8 1024 0
  bench train-0.6b-cudnn 60 "$gb/bench_gpu_model" train 0.6b 8 1024 0 --attention cudnn
else
  not_run bench-model "needs the full build"
fi

# Components: GEMM and attention TFLOP/s, the fused log-prob.
if [ -n "$gpu_why" ]; then
  not_run bench-kernels "$gpu_why"
elif [ -x "$gb/bench_gpu_kernels" ]; then
  bench bench-kernels 60 "$gb/bench_gpu_kernels"
  [ -x "$gb/bench_gpu_logprob" ] && bench bench-logprob 45 "$gb/bench_gpu_logprob"
else
  not_run bench-kernels "needs the full build"
fi

# The same shapes in PyTorch + transformers: REF| lines, joined below.
if [ -z "$torch_python" ]; then
  not_run torch-reference "no python3 with torch here"
elif [ -n "$gpu_why" ]; then
  not_run torch-reference "$gpu_why"
else
  # KPO_TORCH_REF_ARGS: extra arguments (e.g. --sections gemm,attention).
  # shellcheck disable=SC2086
  bench torch-reference 180 "$torch_python" "$root/bench/torch_reference.py" ${KPO_TORCH_REF_ARGS:-}
fi

# The real job with the paper's response length: 8 prompts x 8, 4096 tokens
# (the issue's goal: rollout <= 25 s), new paths first.
train_stage 8x8x4096-new 8 8 4096 120 "${new_paths[@]}"
train_stage 8x8x4096 8 8 4096 150

# The filter kernel against the CPU filter; NCCL (all-reduce, bf16
# broadcast, the 4B weight sync).
if [ -n "$gpu_why" ]; then
  not_run bench-filter "$gpu_why"
elif [ -n "$bench_bin" ]; then
  bench bench-filter 60 "$bench_bin" filter
  if [ "$bench_bin" = "$gb/bench_gpu" ] && command -v mpirun >/dev/null; then
    bench bench-nccl 60 mpirun -np "$n_gpus" "$bench_bin" nccl
  else
    not_run bench-nccl "needs the full build and mpirun"
  fi
fi

# A failing suite: memcheck names the first bad access of the model's and
# the attention's tests (slow, so last, and only then).
if [ -n "$bench_bin" ] && [ "$suite_rc" != 0 ] && [ "$suite_rc" != 125 ] && [ -z "$gpu_why" ] &&
   command -v compute-sanitizer >/dev/null; then
  for t in test_gpu_attention test_gpu_model; do
    stage "memcheck-$t" 60 compute-sanitizer --tool memcheck --error-exitcode 1 \
      --print-limit 20 "$build/tests/gpu/$t"
  done
fi

grep '^REFINFO|torch|' "$log" | head -1 | tr '|' ' ' \
  | sed 's/^REFINFO /PyTorch reference: /' >"$build/refinfo.tmp"
[ -s "$build/refinfo.tmp" ] && header+=("$(cat "$build/refinfo.tmp")")
grep -q 'transformers missing' "$log" &&
  header+=("PyTorch reference: transformers MISSING, its model rows are a minimal torch Qwen3")
warns=$(grep -c -E 'component_repository_open|mca_base_component' "$log" || true)
[ "${warns:-0}" -gt 0 ] && header+=("$warns Open MPI/PMIx component load warnings in the log")

{
  echo
  echo "kpo gpu run, $(date -u +%FT%TZ), $(( $(date +%s) - start ))s in all; full log: $log"
  for h in "${header[@]}"; do echo "  $h"; done
  echo "  ratio: kpo speed / PyTorch speed, both measured in this run (> 1: kpo faster;"
  echo "  for us/token and s the inverse of the value ratio)"
  printf '%-56s %11s %11s %7s %-9s %s\n' "what" "kpo" "pytorch" "ratio" "unit" "note"
  awk -F'|' -v reffile="$refs" '
    function num(x) { return x ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ }
    function ratio(k, r, u) {
      if (!num(k) || !num(r) || k + 0 == 0 || r + 0 == 0) return "-"
      return sprintf("%.2fx", (u == "us/token" || u == "s" || u == "ms") ? r / k : k / r)
    }
    FILENAME == reffile {
      if ($1 == "REF" && !($2 in ref)) { ref[$2] = $3; refunit[$2] = $4; refnote[$2] = $5; order[++n] = $2 }
      next
    }
    $1 == "STAGE" { printf "%-56s %-31s %s\n", "stage " $2, $3, $4; next }
    $1 == "ROW" {
      # A variant (cudnn, split, graphs; a prefill path) is compared with
      # the PyTorch row of its shape: the reference has one path per shape.
      key = $2; sub(/^attention cudnn /, "attention ", key)
      while (sub(/ (split|graphs|flash|decode)$/, "", key)) {}
      r = (key in ref) ? ref[key] : "-"; used[key] = 1
      printf "%-56s %11s %11s %7s %-9s %s\n", $2, $3, r, ratio($3, r, $4), $4, $5
    }
    END {
      for (i = 1; i <= n; i++) if (!(order[i] in used)) {
        if (!shown++) print "PyTorch only (no kpo row with that name):"
        printf "%-56s %11s %11s %7s %-9s %s\n", order[i], "-", ref[order[i]], "-", refunit[order[i]], refnote[order[i]]
      }
    }' "$refs" "$table"
  [ -s "$table.notes" ] && { echo "gpu suite notes:"; cat "$table.notes"; }
  # A new path that fell back at run time (cuDNN refused, a graph capture
  # failed) still prints rows, measured on the old path: say so here.
  grep -E 'using the attention kernel from now on|decoding without CUDA graphs from now on' "$log" \
    | awk '!seen[$0]++' | sed 's/^/    /' >"$build/fallbacks.tmp"
  [ -s "$build/fallbacks.tmp" ] && { echo "NEW PATHS THAT FELL BACK (their rows measured the old path):"; cat "$build/fallbacks.tmp"; }
  grep -E '^step +[0-9]+/[0-9]+ ' "$log" | sed 's/^/    /' >"$build/progress.tmp"
  [ -s "$build/progress.tmp" ] && { echo "kpo train progress lines in the log (the train stages last):"; cat "$build/progress.tmp"; }
} | tee -a "$log" "$log_dir/gpu-table.txt"
status=0
grep -q '^STAGE|.*\(FAILED\|TIMED OUT\)' "$table" && status=1
rm -f "$table" "$table.notes" "$refs" "$build/rows.tmp" "$build/refinfo.tmp" "$build/progress.tmp" \
  "$build/fallbacks.tmp"
exit $status
