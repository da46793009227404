#!/usr/bin/env bash
# Submits the whole paper to Slurm: every condition's training job, each
# one's evaluation once it succeeded (--dependency=afterok), and the
# analysis job that writes Tables 1-3 once every evaluation has ended
# (afterany: a failed condition leaves a gap in the tables, not no tables).
#
#   jobs/reproduce-paper.sh --model DIR --data FILE --bench math500=F --bench aime24=F --bench aime25=F
#   jobs/reproduce-paper.sh --scale tiny            (CPU, minutes; the whole pipeline)
#
# Options (environment variable in brackets):
#   --scale paper|tiny       [KPO_SCALE] tiny: configs/tiny.ini, the arith task, CPU resources
#   --runs DIR               [KPO_RUNS] runs, logs and tables (default ./runs)
#   --model DIR              [KPO_MODEL] base model (tiny: default RUNS/tiny/sft-model,
#                            made first by a `kpo sft --init tiny` job when missing)
#   --data FILE              [KPO_TRAIN_DATA] training JSONL (paper)
#   --bench NAME=FILE        [KPO_BENCHES] evaluation benchmark, repeatable (paper)
#   --conditions "A B ..."   [KPO_CONDITIONS] default: kpo-strong kpo-weak is-kpo-weak opt0 opt1 grpo gspo
#   --device cpu|cuda        [KPO_DEVICE] training's run.device and eval's --device
#                            (default cuda at paper scale, cpu at tiny scale)
#   --nodes N  --ntasks-per-node N  --gpus-per-node N  --cpus-per-task N  --time T
#                            resources of the training and eval jobs (paper: 1 x 8 x 8 x 8;
#                            tiny: 1 x 2 x 0 x 1); on cuda one rank per GPU: either
#                            count defaults to the other
#   --rollout-nodes N        [KPO_ROLLOUT_NODES] the last N nodes of each training job sample
#   --set SECTION.KEY=V      training override for every condition (repeatable)
#   --eval-arg ARG           extra kpo eval argument (repeatable), e.g. --eval-arg=--arith-problems=32
#   --sbatch-arg ARG         extra sbatch argument for every job (repeatable), e.g. --sbatch-arg=--partition=gpu
#   --wait                   wait for the analysis job and print the tables (exit non-zero if it failed)
#   --dry-run                print the sbatch commands, submit nothing
# The jobs find kpo through KPO_BIN, PATH or build/kpo, and are launched as in
# jobs/train.sh (KPO_LAUNCHER=srun|mpirun, KPO_SRUN_MPI=pmix).
set -euo pipefail

# shellcheck source=jobs/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SCALE=${KPO_SCALE:-paper}
RUNS=${KPO_RUNS:-$PWD/runs}
MODEL=${KPO_MODEL:-}
DATA=${KPO_TRAIN_DATA:-}
CONDITIONS=(kpo-strong kpo-weak is-kpo-weak opt0 opt1 grpo gspo)
if [ -n "${KPO_CONDITIONS:-}" ]; then read -r -a CONDITIONS <<<"$KPO_CONDITIONS"; fi
BENCHES=()
if [ -n "${KPO_BENCHES:-}" ]; then read -r -a BENCHES <<<"$KPO_BENCHES"; fi
NODES="" TASKS_PER_NODE="" GPUS_PER_NODE="" CPUS_PER_TASK="" TIME_LIMIT=""
ROLLOUT_NODES=${KPO_ROLLOUT_NODES:-}
DEVICE=${KPO_DEVICE:-}
JOB_DEVICE=""  # DEVICE, else the scale's
TRAIN_SETS=()
EVAL_ARGS=()
SBATCH_ARGS=()
WAIT=0
DRY_RUN=0

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

parse_args() {
  local bench_from_cli=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --*=*) local option=${1%%=*} value=${1#*=}; shift; set -- "$option" "$value" "$@"; continue ;;
    esac
    case "$1" in
      --scale) SCALE=$2 ;;
      --runs) RUNS=$2 ;;
      --model) MODEL=$2 ;;
      --data) DATA=$2 ;;
      --bench)
        if [ "$bench_from_cli" -eq 0 ]; then BENCHES=(); bench_from_cli=1; fi
        BENCHES+=("$2") ;;
      --conditions) read -r -a CONDITIONS <<<"$2" ;;
      --nodes) NODES=$2 ;;
      --ntasks-per-node) TASKS_PER_NODE=$2 ;;
      --gpus-per-node) GPUS_PER_NODE=$2 ;;
      --cpus-per-task) CPUS_PER_TASK=$2 ;;
      --time) TIME_LIMIT=$2 ;;
      --rollout-nodes) ROLLOUT_NODES=$2 ;;
      --device) DEVICE=$2 ;;
      --set) TRAIN_SETS+=("$2") ;;
      --eval-arg) EVAL_ARGS+=("$2") ;;
      --sbatch-arg) SBATCH_ARGS+=("$2") ;;
      --wait) WAIT=1; shift; continue ;;
      --dry-run) DRY_RUN=1; shift; continue ;;
      -h | --help) usage 0 ;;
      *) kpo_die "unknown argument $1 (jobs/reproduce-paper.sh --help)" ;;
    esac
    [ $# -ge 2 ] || kpo_die "$1 needs a value"
    shift 2
  done
  local ranks
  case "$SCALE" in
    paper)
      NODES=${NODES:-1} CPUS_PER_TASK=${CPUS_PER_TASK:-8} JOB_DEVICE=${DEVICE:-cuda} ranks=8
      [ -n "$MODEL" ] || kpo_die "paper scale needs --model DIR (Qwen3-4B-Base, HF format) or KPO_MODEL"
      [ -n "$DATA" ] || kpo_die "paper scale needs --data FILE (DAPO-Math-17k JSONL) or KPO_TRAIN_DATA"
      [ ${#BENCHES[@]} -gt 0 ] || kpo_die "paper scale needs --bench NAME=FILE for each benchmark (or KPO_BENCHES)" ;;
    tiny)
      NODES=${NODES:-1} CPUS_PER_TASK=${CPUS_PER_TASK:-1} TIME_LIMIT=${TIME_LIMIT:-01:00:00}
      JOB_DEVICE=${DEVICE:-cpu} ranks=2 ;;
    *) kpo_die "--scale $SCALE: use paper or tiny" ;;
  esac
  case "$JOB_DEVICE" in
    cuda)
      # One rank per GPU (kpo gives each rank the GPU of its index on the node).
      GPUS_PER_NODE=${GPUS_PER_NODE:-${TASKS_PER_NODE:-$ranks}}
      TASKS_PER_NODE=${TASKS_PER_NODE:-$GPUS_PER_NODE}
      [ "$GPUS_PER_NODE" -gt 0 ] || kpo_die "device cuda with --gpus-per-node 0: ask for GPUs, or --device cpu" ;;
    cpu) TASKS_PER_NODE=${TASKS_PER_NODE:-$ranks} GPUS_PER_NODE=${GPUS_PER_NODE:-0} ;;
    *) kpo_die "--device $JOB_DEVICE: use cpu or cuda" ;;
  esac
}

# sbatch with the words shown first; prints the job id.
submit() {
  local -a command=(sbatch --parsable "${SBATCH_ARGS[@]}" "$@")
  kpo_show "${command[@]}" >&2
  if [ "$DRY_RUN" -eq 1 ]; then
    echo "dry-$RANDOM"
    return
  fi
  local id
  id=$("${command[@]}")
  echo "${id%%;*}"
}

resources() {
  RESOURCES=(--nodes="$NODES" --ntasks-per-node="$TASKS_PER_NODE" --gpus-per-node="$GPUS_PER_NODE"
    --cpus-per-task="$CPUS_PER_TASK")
  if [ -n "$TIME_LIMIT" ]; then RESOURCES+=(--time="$TIME_LIMIT"); fi
}

main() {
  parse_args "$@"
  KPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  mkdir -p "$RUNS/logs"
  RUNS=$(cd "$RUNS" && pwd)
  local kpo
  kpo=$(kpo_find_bin)
  # Every job inherits these (sbatch exports the submitting environment).
  export KPO_ROOT KPO_BIN=$kpo KPO_SCALE=$SCALE KPO_RUNS=$RUNS
  if [ -n "$DATA" ]; then export KPO_TRAIN_DATA=$DATA; fi
  if [ -n "$ROLLOUT_NODES" ]; then export KPO_ROLLOUT_NODES=$ROLLOUT_NODES; fi
  # Only a device asked for: otherwise each job takes its scale's (and a --set run.device holds).
  if [ -n "$DEVICE" ]; then export KPO_DEVICE=$DEVICE; fi
  resources
  local logs="$RUNS/logs" prep_dependency=() condition train_id eval_id eval_ids=() analysis_id
  kpo_log "scale $SCALE, device $JOB_DEVICE ($NODES node(s) x $TASKS_PER_NODE rank(s), $GPUS_PER_NODE GPU(s) per node); runs, logs and tables under $RUNS; kpo $kpo"

  if [ "$SCALE" = tiny ] && [ -z "$MODEL" ]; then
    MODEL="$RUNS/tiny/sft-model"
    if [ ! -e "$MODEL/config.json" ]; then
      local prep_id
      prep_id=$(submit --job-name=tiny-sft --ntasks=1 --cpus-per-task="$CPUS_PER_TASK" --output="$logs/%x-%j.out" \
        --wrap "$(printf '%q ' "$kpo" sft --init tiny --out "$MODEL")")
      prep_dependency=(--dependency="afterok:$prep_id" --kill-on-invalid-dep=yes)
    fi
  fi
  export KPO_MODEL=$MODEL

  local -a train_args=() eval_args=()
  local item
  for item in "${TRAIN_SETS[@]}"; do train_args+=(--set "$item"); done
  for item in "${BENCHES[@]}"; do eval_args+=(--bench "$item"); done
  if [ ${#EVAL_ARGS[@]} -gt 0 ]; then eval_args+=(-- "${EVAL_ARGS[@]}"); fi

  for condition in "${CONDITIONS[@]}"; do
    [ -f "$KPO_ROOT/jobs/$condition.sbatch" ] || kpo_die "no jobs/$condition.sbatch"
    train_id=$(submit "${RESOURCES[@]}" "${prep_dependency[@]}" --output="$logs/%x-%j.out" \
      "$KPO_ROOT/jobs/$condition.sbatch" "${train_args[@]}")
    eval_id=$(submit "${RESOURCES[@]}" --job-name="eval-$condition" --output="$logs/%x-%j.out" \
      --dependency="afterok:$train_id" --kill-on-invalid-dep=yes \
      "$KPO_ROOT/jobs/eval.sbatch" "$condition" "${eval_args[@]}")
    eval_ids+=("$eval_id")
    kpo_log "$condition: training job $train_id, evaluation job $eval_id"
  done
  local dependency
  dependency="afterany:$(IFS=:; echo "${eval_ids[*]}")"
  analysis_id=$(submit --output="$logs/%x-%j.out" --dependency="$dependency" \
    "$KPO_ROOT/jobs/analysis.sbatch" --conditions "${CONDITIONS[*]}")
  kpo_log "analysis job $analysis_id writes $RUNS/paper-tables.txt; follow with: squeue; tail -f $logs/*.out"

  if [ "$WAIT" -eq 1 ] && [ "$DRY_RUN" -eq 0 ]; then
    wait_for_job "$analysis_id"
    cat "$RUNS/paper-tables.txt"
  fi
}

# Polls until the job has left the queue; fails unless it COMPLETED.
wait_for_job() {
  local id=$1 state=""
  while true; do
    state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/^ *JobState=\([A-Z_]*\).*/\1/p')
    case "$state" in
      COMPLETED) return 0 ;;
      FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        kpo_die "analysis job $id ended $state" ;;
      "") kpo_die "analysis job $id is gone from the queue (MinJobAge?)" ;;
    esac
    sleep 5
  done
}

main "$@"
