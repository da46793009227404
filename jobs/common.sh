# Shared by every script in jobs/ (sourced, not run): finding kpo and the
# repository, printing a command before running it, the parallel launcher
# (srun or mpirun), forwarding Slurm's preemption signal to kpo.
# shellcheck shell=bash

kpo_log() { echo "[kpo-job ${SLURM_JOB_ID:-local}] $*"; }
kpo_die() { echo "[kpo-job ${SLURM_JOB_ID:-local}] error: $*" >&2; exit 1; }

# The repository root. sbatch runs a copy of the script from its spool
# directory, so BASH_SOURCE is no guide there: KPO_ROOT, else the submitted
# script's own path (scontrol keeps it across requeues), else the
# submission directory.
kpo_find_root() {
  local script=""
  if [ -n "${KPO_ROOT:-}" ]; then
    (cd "$KPO_ROOT" && pwd)
    return
  fi
  if [ -n "${SLURM_JOB_ID:-}" ] && command -v scontrol >/dev/null 2>&1; then
    script=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/^ *Command=\([^ ]*\).*/\1/p' | head -n 1)
    if [ -f "$script" ] && [ -f "$(dirname "$script")/common.sh" ]; then
      (cd "$(dirname "$script")/.." && pwd)
      return
    fi
  fi
  if [ -n "${SLURM_SUBMIT_DIR:-}" ] && [ -f "$SLURM_SUBMIT_DIR/jobs/common.sh" ]; then
    echo "$SLURM_SUBMIT_DIR"
    return
  fi
  (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

# The kpo binary: KPO_BIN, else kpo on PATH, else the repository's build/kpo.
kpo_find_bin() {
  if [ -n "${KPO_BIN:-}" ]; then
    [ -x "$KPO_BIN" ] || kpo_die "KPO_BIN=$KPO_BIN is not an executable"
    echo "$KPO_BIN"
  elif command -v kpo >/dev/null 2>&1; then
    command -v kpo
  elif [ -x "$KPO_ROOT/build/kpo" ]; then
    echo "$KPO_ROOT/build/kpo"
  else
    kpo_die "no kpo binary: set KPO_BIN, put kpo on PATH, or build it (bash scripts/setup.sh build)"
  fi
}

# Prints a command, shell-quoted, exactly as it will run.
kpo_show() {
  local quoted
  printf -v quoted ' %q' "$@"
  kpo_log "run:${quoted}"
}

# Fills the array KPO_LAUNCH with the parallel launcher's words.
#   KPO_LAUNCHER=srun (default inside Slurm): srun --mpi=$KPO_SRUN_MPI (pmix)
#   KPO_LAUNCHER=mpirun: mpirun (it reads the Slurm allocation itself)
#   KPO_LAUNCHER=none: no launcher (a single process)
# KPO_LAUNCHER_ARGS adds words (for example "--cpu-bind=cores" or
# "--mca btl tcp,self").
kpo_launch_words() {
  local launcher=${KPO_LAUNCHER:-}
  local -a extra=()
  if [ -z "$launcher" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ]; then launcher=srun; else launcher=mpirun; fi
  fi
  if [ -n "${KPO_LAUNCHER_ARGS:-}" ]; then
    read -r -a extra <<<"$KPO_LAUNCHER_ARGS"
  fi
  case "$launcher" in
    srun)
      KPO_LAUNCH=(srun "--mpi=${KPO_SRUN_MPI:-pmix}" --kill-on-bad-exit=1 "${extra[@]}") ;;
    mpirun)
      KPO_LAUNCH=(mpirun)
      if [ "$(id -u)" -eq 0 ]; then KPO_LAUNCH+=(--allow-run-as-root); fi
      # Outside an allocation mpirun needs a rank count.
      if [ -z "${SLURM_JOB_ID:-}" ]; then KPO_LAUNCH+=(-np "${KPO_NP:-2}" --oversubscribe); fi
      KPO_LAUNCH+=("${extra[@]}") ;;
    none) KPO_LAUNCH=() ;;
    *) kpo_die "KPO_LAUNCHER=$launcher: use srun, mpirun or none" ;;
  esac
}

# Runs a command with the batch shell's signals forwarded to it.
# Slurm sends USR1 to the batch shell (--signal=B:USR1@120) before the time
# limit, and TERM when it preempts, requeues or cancels the job; bash defers
# traps while a foreground child runs, so the command runs in the background
# and the shell waits for it. srun and mpirun both pass USR1 and TERM on to
# every rank; kpo then checkpoints at the end of the current step and exits 0.
# Sets KPO_SIGNAL to the name of the last signal seen (empty when none) and
# returns the command's exit status.
# shellcheck disable=SC2034  # read by the scripts that source this file
KPO_SIGNAL=""
KPO_CHILD=""
kpo_forward_signal() {
  KPO_SIGNAL=$1
  kpo_log "received SIG$1: asking kpo to checkpoint at the end of this step"
  if [ -n "$KPO_CHILD" ]; then kill "-$1" "$KPO_CHILD" 2>/dev/null || true; fi
}
# shellcheck disable=SC2034  # KPO_SIGNAL is read by the caller
kpo_run_forwarding() {
  local status=0
  KPO_SIGNAL=""
  trap 'kpo_forward_signal USR1' USR1
  trap 'kpo_forward_signal TERM' TERM
  "$@" &
  KPO_CHILD=$!
  while true; do
    status=0
    wait "$KPO_CHILD" || status=$?
    # A status above 128 with the child still there is a trapped signal
    # interrupting wait, not the child's exit.
    if [ "$status" -gt 128 ] && kill -0 "$KPO_CHILD" 2>/dev/null; then continue; fi
    break
  done
  KPO_CHILD=""
  trap - USR1 TERM
  return "$status"
}

# One INI value (section, key) from the last of the files that sets it, as
# kpo reads them (later files override earlier ones; a ';' after blanks
# starts a comment); empty when none sets it.
kpo_ini_get() {
  local section=$1 key=$2 file value=""
  shift 2
  for file in "$@"; do
    local found
    found=$(awk -v want="$section" -v key="$key" '
      /^[ \t]*[;#]/ { next }
      /^[ \t]*\[/ { gsub(/[][ \t]/, ""); in_section = ($0 == want); next }
      in_section { split($0, kv, "="); k = kv[1]; gsub(/[ \t]/, "", k)
                   if (k == key) { v = substr($0, index($0, "=") + 1); sub(/[ \t]+;.*$/, "", v)
                                   gsub(/^[ \t]+|[ \t]+$/, "", v); last = v } }
      END { if (last != "") print last }' "$file")
    if [ -n "$found" ]; then value=$found; fi
  done
  echo "$value"
}

# GPUs per node of this allocation, empty when Slurm does not say:
# SLURM_GPUS_ON_NODE (any GPU request), else --gpus-per-node ([type:]N).
kpo_node_gpus() {
  if [ -n "${SLURM_GPUS_ON_NODE:-}" ]; then
    echo "$SLURM_GPUS_ON_NODE"
  elif [ -n "${SLURM_GPUS_PER_NODE:-}" ]; then
    echo "${SLURM_GPUS_PER_NODE##*:}"
  fi
}

# DEVICE is cpu or cuda (kpo's run.device, kpo eval's --device). With cuda
# each rank takes the GPU numbered by its index on its node (modulo the GPUs
# it sees), so the jobs run one rank per GPU. Says how the allocation
# matches that, and stops here, before kpo loads the model to find out,
# when Slurm gave the node no GPU at all.
kpo_check_device() {
  local device=$1 gpus tasks
  case "$device" in
    cpu) return 0 ;;
    cuda) ;;
    *) kpo_die "device $device: use cpu or cuda" ;;
  esac
  gpus=$(kpo_node_gpus)
  tasks=${SLURM_NTASKS_PER_NODE:-}
  if [ -z "$tasks" ] && [ -n "${SLURM_NTASKS:-}" ] && [ -n "${SLURM_JOB_NUM_NODES:-}" ]; then
    tasks=$(((SLURM_NTASKS + SLURM_JOB_NUM_NODES - 1) / SLURM_JOB_NUM_NODES))
  fi
  if [ "${gpus:-}" = 0 ]; then
    kpo_die "device cuda, but the job has no GPU (sbatch --gpus-per-node=N, or --device cpu)"
  elif [ -z "$gpus" ] || [ -z "$tasks" ]; then
    kpo_log "device cuda: one GPU per rank, by the rank's index on its node (GPUs per node: ${gpus:-not given by Slurm})"
  elif [ "$gpus" -lt "$tasks" ]; then
    kpo_log "warning: device cuda with $tasks rank(s) per node on $gpus GPU(s): ranks share GPUs (sbatch --gpus-per-node=$tasks gives each its own)"
  else
    kpo_log "device cuda: $tasks rank(s) per node, one GPU each ($gpus GPU(s) per node)"
  fi
}

# Slurm job facts for the log: nodes, tasks, GPUs.
kpo_describe_allocation() {
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    kpo_log "job ${SLURM_JOB_ID} (${SLURM_JOB_NAME:-}) restart ${SLURM_RESTART_COUNT:-0}: ${SLURM_JOB_NUM_NODES:-1} node(s) [${SLURM_JOB_NODELIST:-?}], ${SLURM_NTASKS:-?} task(s), ${SLURM_NTASKS_PER_NODE:-?} per node, GPUs per node ${SLURM_GPUS_PER_NODE:-0}"
  else
    kpo_log "not inside a Slurm job: running here"
  fi
}
