#!/usr/bin/env bash
# A real Slurm on this machine, for tests: munged, slurmctld and one slurmd
# (Debian's slurm-wlm and munge), configured in a private directory with its
# own ports so it never touches /etc/slurm or a site's Slurm.
#
#   tests/slurm/local-slurm.sh start    start (or find running) and wait until the node is idle
#   tests/slurm/local-slurm.sh stop     stop what start started; nothing keeps running
#   tests/slurm/local-slurm.sh status   exit 0 when the cluster answers
#   tests/slurm/local-slurm.sh env      print the export line clients need (SLURM_CONF)
#
# KPO_SLURM_DIR (default /tmp/kpo-slurm) holds slurm.conf, state, spool, logs
# and pid files. Both start and stop are idempotent. Needs root (slurmd runs
# jobs as their user) and the packages slurm-wlm and munge.
set -euo pipefail

SLURM_DIR=${KPO_SLURM_DIR:-/tmp/kpo-slurm}
CONF="$SLURM_DIR/slurm.conf"
CTLD_PORT=${KPO_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${KPO_SLURM_SLURMD_PORT:-16818}
START_TIMEOUT=${KPO_SLURM_START_TIMEOUT:-60}
export SLURM_CONF="$CONF"

log() { echo "local-slurm: $*" >&2; }
die() { log "$*"; exit 1; }

require_tools() {
  local tool
  [ "$(id -u)" -eq 0 ] || die "needs root (slurmd must run jobs as their user)"
  for tool in munged munge unmunge slurmctld slurmd scontrol sinfo sbatch; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] \
      || die "missing $tool: apt-get install slurm-wlm munge (scripts/setup.sh deps)"
  done
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if munge_works; then
    return 0
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged
  touch "$SLURM_DIR/started-munged"
  local i
  for ((i = 0; i < 50; i++)); do
    munge_works && return 0
    sleep 0.1
  done
  die "munged did not come up"
}

node_cpus() {
  local cpus
  cpus=$(nproc)
  # Two tasks must fit even on a one-core box; slurmd takes the configured
  # count (config_overrides), oversubscribing a little.
  [ "$cpus" -ge 2 ] || cpus=2
  echo "$cpus"
}

write_conf() {
  local host cpus memory
  host=$(hostname -s)
  cpus=$(node_cpus)
  memory=$(awk '/MemTotal/ { m = int($2 / 1024 * 0.8); print (m > 1000 ? m : 1000) }' /proc/meminfo)
  install -d "$SLURM_DIR/state" "$SLURM_DIR/spool" "$SLURM_DIR/log"
  cat >"$CONF.tmp" <<CONF_EOF
# Written by tests/slurm/local-slurm.sh: a one-node test cluster.
ClusterName=kpotest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
SlurmUser=root
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobRequeue=1
KillWait=30
MinJobAge=600
SchedulerParameters=sched_interval=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF_EOF
  mv "$CONF.tmp" "$CONF"
}

read_pid() { if [ -s "$1" ]; then cat "$1" 2>/dev/null || true; fi; }

pid_alive() {
  local pid
  pid=$(read_pid "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

ctld_answers() { timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; }

node_state() { timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n 1; }

wait_until_idle() {
  local deadline=$((SECONDS + START_TIMEOUT)) state=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    state=$(node_state || true)
    case "$state" in
      idle | mixed | allocated | completing) return 0 ;;
      down* | drain*)
        timeout 10 scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  log "node did not become idle within ${START_TIMEOUT}s (state '$state'); logs in $SLURM_DIR/log"
  tail -n 20 "$SLURM_DIR/log/slurmctld.log" "$SLURM_DIR/log/slurmd.log" >&2 || true
  return 1
}

start_cluster() {
  require_tools
  mkdir -p "$SLURM_DIR"
  if [ -s "$CONF" ] && ctld_answers && pid_alive "$SLURM_DIR/slurmd.pid"; then
    log "already running ($CONF)"
    wait_until_idle
    return 0
  fi
  start_munge
  write_conf
  if ! pid_alive "$SLURM_DIR/slurmctld.pid"; then
    slurmctld -f "$CONF"
  fi
  if ! pid_alive "$SLURM_DIR/slurmd.pid"; then
    slurmd -f "$CONF"
  fi
  wait_until_idle
  log "up: $(sinfo -h -N -o '%N %T %c CPUs')   (export SLURM_CONF=$CONF)"
}

wait_gone() {
  local pid=$1 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    # An exited daemon its parent has not reaped yet counts as gone.
    [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ] || return 0
    sleep 0.1
  done
  return 1
}

stop_daemon() {
  local pidfile=$1 name=$2 pid
  pid=$(read_pid "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" || { log "$name did not stop; killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$pidfile"
}

stop_cluster() {
  [ -d "$SLURM_DIR" ] || return 0
  if [ -s "$CONF" ]; then
    # Jobs still in the queue would come back at the next start: cancel them.
    timeout 10 scancel --full --quiet --user=root >/dev/null 2>&1 || true
    timeout 15 scontrol shutdown >/dev/null 2>&1 || true
  fi
  stop_daemon "$SLURM_DIR/slurmd.pid" slurmd
  stop_daemon "$SLURM_DIR/slurmctld.pid" slurmctld
  if [ -e "$SLURM_DIR/started-munged" ]; then
    stop_daemon /run/munge/munged.pid munged
    rm -f "$SLURM_DIR/started-munged"
  fi
  # Job state would otherwise survive into the next start.
  rm -rf "$SLURM_DIR/state" "$SLURM_DIR/spool"
  log "stopped"
}

case "${1:-}" in
  start) start_cluster ;;
  stop) stop_cluster ;;
  status) ctld_answers ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
