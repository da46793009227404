#!/usr/bin/env bash
# The launcher behind every condition's sbatch script (jobs/<condition>.sbatch):
# resolves the configs, paths and role mapping, prints the command, runs
# `kpo train` under srun or mpirun, resumes from the newest checkpoint when
# one exists, and forwards Slurm's preemption signal so kpo checkpoints.
#
#   jobs/train.sh CONDITION [options] [-- more kpo train arguments]
#
# CONDITION is a preset in configs/ (kpo-strong, kpo-weak, is-kpo-weak, opt0,
# opt1, grpo, gspo), layered on configs/base-paper.ini. Options (each has an
# environment variable; the option wins):
#   --scale paper|tiny     KPO_SCALE (paper): tiny adds configs/tiny.ini, a CPU run in minutes
#   --model DIR            KPO_MODEL: the HF model directory (paper: required;
#                          tiny: default $KPO_RUNS/tiny/sft-model)
#   --data FILE            KPO_TRAIN_DATA: the training JSONL (paper: required; tiny: arith)
#   --runs DIR             KPO_RUNS: where runs go (default $SLURM_SUBMIT_DIR/runs, else ./runs)
#   --out DIR              KPO_OUT: this run's directory (default $KPO_RUNS/CONDITION)
#   --rollout-nodes N      KPO_ROLLOUT_NODES: the last N nodes sample, the others learn
#   --rollout-ranks N      KPO_ROLLOUT_RANKS: the last N ranks sample (0: every rank both)
#   --device cpu|cuda      KPO_DEVICE: run.device (default: the configs', cuda at paper
#                          scale, cpu at tiny); cuda takes one GPU per rank
#   --set SECTION.KEY=V    a config override (repeatable)
#   --dry-run              print what would run and stop
# Launcher: KPO_LAUNCHER=srun|mpirun|none, KPO_SRUN_MPI (pmix), KPO_LAUNCHER_ARGS.
# The kpo binary: KPO_BIN, else kpo on PATH, else build/kpo.
set -euo pipefail

# shellcheck source=jobs/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

CONDITION=""
SCALE=${KPO_SCALE:-paper}
MODEL=${KPO_MODEL:-}
DATA=${KPO_TRAIN_DATA:-}
RUNS=${KPO_RUNS:-}
OUT=${KPO_OUT:-}
ROLLOUT_NODES=${KPO_ROLLOUT_NODES:-}
ROLLOUT_RANKS=${KPO_ROLLOUT_RANKS:-}
DEVICE=${KPO_DEVICE:-}
DRY_RUN=0
OVERRIDES=()
PASSTHROUGH=()

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --scale) SCALE=$2; shift 2 ;;
      --model) MODEL=$2; shift 2 ;;
      --data) DATA=$2; shift 2 ;;
      --runs) RUNS=$2; shift 2 ;;
      --out) OUT=$2; shift 2 ;;
      --rollout-nodes) ROLLOUT_NODES=$2; shift 2 ;;
      --rollout-ranks) ROLLOUT_RANKS=$2; shift 2 ;;
      --device) DEVICE=$2; shift 2 ;;
      --set) OVERRIDES+=("$2"); shift 2 ;;
      --set=*) OVERRIDES+=("${1#--set=}"); shift ;;
      --dry-run) DRY_RUN=1; shift ;;
      -h | --help) usage 0 ;;
      --) shift; PASSTHROUGH=("$@"); break ;;
      -*) kpo_die "unknown option $1 (jobs/train.sh --help)" ;;
      *)
        [ -z "$CONDITION" ] || kpo_die "one condition only (got $CONDITION and $1)"
        CONDITION=$1; shift ;;
    esac
  done
  [ -n "$CONDITION" ] || kpo_die "name a condition (kpo-strong, kpo-weak, is-kpo-weak, opt0, opt1, grpo, gspo)"
  case "$SCALE" in paper | tiny) ;; *) kpo_die "--scale $SCALE: use paper or tiny" ;; esac
}

# Ranks per node, from Slurm's view of the allocation (uniform nodes only).
tasks_per_node() {
  if [ -n "${SLURM_NTASKS_PER_NODE:-}" ]; then
    echo "$SLURM_NTASKS_PER_NODE"
  elif [ -n "${SLURM_NTASKS:-}" ] && [ -n "${SLURM_JOB_NUM_NODES:-}" ]; then
    [ $((SLURM_NTASKS % SLURM_JOB_NUM_NODES)) -eq 0 ] \
      || kpo_die "--rollout-nodes needs the same number of tasks on every node (use --ntasks-per-node)"
    echo $((SLURM_NTASKS / SLURM_JOB_NUM_NODES))
  else
    kpo_die "--rollout-nodes needs a Slurm allocation (or give --rollout-ranks)"
  fi
}

# rollout.ranks from --rollout-nodes: ranks are laid out in blocks (srun
# --distribution=block, mpirun by slot), so the last N nodes hold the last
# N x tasks-per-node ranks, which kpo makes its rollout ranks.
resolve_roles() {
  local per_node nodes
  if [ -n "$ROLLOUT_NODES" ]; then
    [ -z "$ROLLOUT_RANKS" ] || kpo_die "give --rollout-nodes or --rollout-ranks, not both"
    per_node=$(tasks_per_node)
    nodes=${SLURM_JOB_NUM_NODES:-1}
    [ "$ROLLOUT_NODES" -lt "$nodes" ] \
      || kpo_die "--rollout-nodes $ROLLOUT_NODES leaves no learner node among $nodes"
    ROLLOUT_RANKS=$((ROLLOUT_NODES * per_node))
    kpo_log "roles: $nodes node(s) x $per_node rank(s); learners on the first $((nodes - ROLLOUT_NODES)) node(s) (ranks 0-$(((nodes - ROLLOUT_NODES) * per_node - 1))), rollout on the last $ROLLOUT_NODES (ranks $(((nodes - ROLLOUT_NODES) * per_node))-$((nodes * per_node - 1)))"
  elif [ -n "$ROLLOUT_RANKS" ]; then
    kpo_log "roles: the last $ROLLOUT_RANKS rank(s) sample, the others learn"
  fi
}

resolve_paths() {
  local root=$1
  RUNS=${RUNS:-${SLURM_SUBMIT_DIR:-$PWD}/runs}
  OUT=${OUT:-$RUNS/$CONDITION}
  if [ "$SCALE" = tiny ]; then
    MODEL=${MODEL:-$RUNS/tiny/sft-model}
  fi
  [ -n "$MODEL" ] || kpo_die "no model: give --model DIR or KPO_MODEL (the HF directory of Qwen3-4B-Base)"
  [ -d "$MODEL" ] || kpo_die "model directory $MODEL does not exist"
  if [ "$SCALE" = paper ]; then
    [ -n "$DATA" ] || kpo_die "no training data: give --data FILE or KPO_TRAIN_DATA (DAPO-Math-17k JSONL)"
  fi
  if [ -n "$DATA" ] && [ "$DATA" != arith ]; then
    [ -f "$DATA" ] || kpo_die "training data $DATA does not exist"
  fi
  CONFIGS=("$root/configs/base-paper.ini" "$root/configs/$CONDITION.ini")
  if [ "$SCALE" = tiny ]; then CONFIGS+=("$root/configs/tiny.ini"); fi
  local config
  for config in "${CONFIGS[@]}"; do
    [ -f "$config" ] || kpo_die "no preset $config (conditions: kpo-strong kpo-weak is-kpo-weak opt0 opt1 grpo gspo kpo-weak-official)"
  done
}

# DEVICE as kpo will resolve run.device: --device (KPO_DEVICE), else the
# last --set run.device=..., else the configs (base-paper.ini: cuda,
# tiny.ini: cpu), else kpo's default, cpu. The command passes it explicitly,
# so what the log shows is what runs.
resolve_device() {
  local override from_sets=""
  for override in "${OVERRIDES[@]}"; do
    case "$override" in run.device=*) from_sets=${override#run.device=} ;; esac
  done
  DEVICE=${DEVICE:-${from_sets:-$(kpo_ini_get run device "${CONFIGS[@]}")}}
  DEVICE=${DEVICE:-cpu}
  kpo_check_device "$DEVICE"
}

# Sets RESUME (0/1); a run file without any checkpoint cannot be resumed,
# so it is moved aside and the run starts again.
resolve_resume() {
  RESUME=0
  if compgen -G "$OUT/checkpoints/step-*" >/dev/null; then
    RESUME=1
    local checkpoints=("$OUT"/checkpoints/step-*)
    kpo_log "resuming $OUT from its newest checkpoint ($(basename "${checkpoints[-1]}"))"
  elif [ -e "$OUT/run.h5" ]; then
    local aside
    aside="$OUT/run.h5.no-checkpoint.$(date +%Y%m%d-%H%M%S)"
    kpo_log "$OUT/run.h5 has no checkpoint to resume from: moving it to $aside and starting again"
    [ "$DRY_RUN" -eq 1 ] || mv "$OUT/run.h5" "$aside"
  fi
}

main() {
  parse_args "$@"
  KPO_ROOT=$(kpo_find_root)
  export KPO_ROOT
  local kpo done_marker status
  kpo=$(kpo_find_bin)
  resolve_paths "$KPO_ROOT"
  done_marker="$OUT/.kpo-job-finished"
  kpo_describe_allocation
  if [ -e "$done_marker" ]; then
    kpo_log "$CONDITION already finished ($(cat "$done_marker")); nothing to run"
    exit 0
  fi
  resolve_roles
  resolve_device
  resolve_resume

  local -a args=(train "${CONFIGS[@]}" --set "run.out=$OUT" --set "model.path=$MODEL")
  if [ -n "$DATA" ]; then args+=(--set "data.train=$DATA"); fi
  if [ -n "$ROLLOUT_RANKS" ]; then args+=(--set "rollout.ranks=$ROLLOUT_RANKS"); fi
  local override
  for override in "${OVERRIDES[@]}"; do args+=(--set "$override"); done
  args+=(--set "run.device=$DEVICE" "${PASSTHROUGH[@]}")
  if [ "$RESUME" -eq 1 ]; then args+=(--resume); fi

  kpo_launch_words
  # One OpenMP thread per CPU Slurm gave each task; more would oversubscribe.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  kpo_log "condition $CONDITION, scale $SCALE, device $DEVICE, run directory $OUT, OMP_NUM_THREADS=$OMP_NUM_THREADS"
  kpo_show "${KPO_LAUNCH[@]}" "$kpo" "${args[@]}"
  if [ "$DRY_RUN" -eq 1 ]; then exit 0; fi
  mkdir -p "$OUT"

  status=0
  kpo_run_forwarding "${KPO_LAUNCH[@]}" "$kpo" "${args[@]}" || status=$?
  if [ "$status" -ne 0 ]; then
    kpo_log "kpo train failed (exit $status); a resubmission or requeue resumes from the newest checkpoint"
    exit "$status"
  fi
  case "$KPO_SIGNAL" in
    "")
      echo "job ${SLURM_JOB_ID:-local} finished $(date -Is)" >"$done_marker"
      kpo_log "$CONDITION finished: $OUT/run.h5" ;;
    USR1)
      # The time limit is near: kpo checkpointed; put the job back in the queue.
      if [ -n "${SLURM_JOB_ID:-}" ]; then
        kpo_log "checkpointed before the time limit; requeueing job $SLURM_JOB_ID"
        scontrol requeue "$SLURM_JOB_ID"
      else
        kpo_log "checkpointed on SIGUSR1; run the same command again to resume"
      fi ;;
    *)
      kpo_log "checkpointed on SIG$KPO_SIGNAL; Slurm requeues the job if it was preempted or requeued" ;;
  esac
}

main "$@"
