#!/usr/bin/env bash
# A private single-node Slurm cluster on this machine, for the Slurm runner's end-to-end test
# (tests/it/slurm.rs) and for trying `teleos.runner=slurm` by hand.
#
#   scripts/slurm-localhost.sh start DIR    start munged, slurmctld and slurmd (idempotent)
#   scripts/slurm-localhost.sh stop DIR     cancel its jobs, stop its daemons by their PIDs
#   scripts/slurm-localhost.sh status DIR   exit 0 when the node answers and is up
#
# Everything lives in DIR: the munge key and socket, slurm.conf, state, spool, logs and PID
# files. Nothing under /etc is read or written (the client commands find the cluster through
# SLURM_CONF=DIR/slurm.conf, which `start` prints), so a system Slurm or munged, if any, is left
# alone. Needs root (slurmd launches jobs as their owner) and Debian's `slurm-wlm` and `munge`
# (slurm 22.05). Ports: SLURMCTLD_PORT and SLURMD_PORT (default 16817 and 16818). CPUs: the
# machine's, from `slurmd -C`; SLURM_LOCALHOST_CPUS declares more (slots, not cores: the jobs
# this runs mostly wait on git and an agent).
#
# Exit codes: 0 done, 2 usage, 3 cannot run here (the message says why), 1 anything else.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
action=$1
dir=$2
case "$action" in start | stop | status) ;; *) usage ;; esac
if [ "$action" = start ]; then
  mkdir -p "$dir"
elif [ ! -d "$dir" ]; then
  # Nothing was ever started there.
  [ "$action" = stop ] && exit 0
  exit 1
fi
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf
export SLURM_CONF=$conf
# The daemons live in sbin, which a non-login root shell may not have on PATH.
export PATH=$PATH:/usr/sbin:/sbin

cannot() {
  echo "slurm-localhost: cannot run here: $*" >&2
  exit 3
}

# The PID in FILE when that process is alive.
live_pid() {
  local pid
  [ -s "$1" ] || return 1
  pid=$({ tr -dc '0-9' <"$1"; } 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Wait up to $2 tenths of a second for the process in pid file $1 to end.
wait_gone() {
  local n=0
  while live_pid "$1" >/dev/null && [ "$n" -lt "$2" ]; do
    sleep 0.1
    n=$((n + 1))
  done
  ! live_pid "$1" >/dev/null
}

stop_daemon() { # NAME PIDFILE
  local pid
  if pid=$(live_pid "$2"); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$2" 100; then
      echo "slurm-localhost: $1 ($pid) did not stop on SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$2" 50 || true
    fi
  fi
  rm -f "$2"
}

node_up() {
  local state
  state=$(sinfo --noheader --format=%t 2>/dev/null | head -n1) || return 1
  case "$state" in idle* | mix* | alloc* | comp*) return 0 ;; *) return 1 ;; esac
}

do_stop() {
  # Jobs first, so that no slurmstepd outlives its slurmd.
  if [ -f "$conf" ] && live_pid "$dir/slurmctld.pid" >/dev/null; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    local n=0
    while [ -n "$(squeue --noheader --format=%i 2>/dev/null)" ] && [ "$n" -lt 100 ]; do
      sleep 0.1
      n=$((n + 1))
    done
  fi
  stop_daemon slurmd "$dir/slurmd.pid"
  stop_daemon slurmctld "$dir/slurmctld.pid"
  stop_daemon munged "$dir/munge/munged.pid"
}

do_start() {
  [ "$(id -u)" -eq 0 ] || cannot "slurmd needs root (running as $(id -un))"
  local tool
  for tool in munged munge slurmctld slurmd sbatch squeue sinfo scancel scontrol; do
    command -v "$tool" >/dev/null ||
      cannot "'$tool' is not installed (Debian: apt-get install slurm-wlm munge)"
  done
  if live_pid "$dir/slurmctld.pid" >/dev/null && live_pid "$dir/slurmd.pid" >/dev/null &&
    live_pid "$dir/munge/munged.pid" >/dev/null && node_up; then
    echo "SLURM_CONF=$conf"
    return 0
  fi
  # Half-started from an earlier run: begin again from nothing running.
  do_stop

  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 711 "$dir/munge"
  local key=$dir/munge/munge.key
  if [ ! -s "$key" ]; then
    (umask 077 && head -c 1024 /dev/urandom >"$key.tmp" && mv "$key.tmp" "$key")
  fi
  chmod 400 "$key"
  local socket=$dir/munge/munge.socket
  # --force: munged refuses a socket left by a daemon that died; ours is stopped above.
  munged --force --key-file="$key" --socket="$socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" ||
    cannot "munged did not start: $(tail -n 3 "$dir/log/munged.log" 2>/dev/null)"
  munge --socket="$socket" --no-input | unmunge --socket="$socket" >/dev/null ||
    cannot "munge cannot encode and decode a credential"

  local host hw cpus mem
  host=$(hostname -s)
  hw=$(slurmd -C | head -n1) || cannot "slurmd -C failed"
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  [ -n "$cpus" ] && [ -n "$mem" ] || cannot "cannot read CPUs and RealMemory from: $hw"
  local node="NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem"
  local overrides=""
  if [ -n "${SLURM_LOCALHOST_CPUS:-}" ] && [ "$SLURM_LOCALHOST_CPUS" -gt "$cpus" ]; then
    node="NodeName=$host NodeAddr=127.0.0.1 CPUs=$SLURM_LOCALHOST_CPUS RealMemory=$mem"
    # slurmd takes the node's size from slurm.conf instead of refusing the node as too small.
    overrides="SlurmdParameters=config_overrides"
  fi
  cat >"$conf.tmp" <<EOF
# Written by scripts/slurm-localhost.sh: a private single-node cluster.
ClusterName=teleoslocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups: this may run in a container without a writable cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=600
KillWait=5
Waittime=0
$overrides
$node State=UNKNOWN
PartitionName=teleos Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$conf.tmp" "$conf"

  slurmctld -f "$conf" -c -i ||
    cannot "slurmctld did not start: $(tail -n 3 "$dir/log/slurmctld.log" 2>/dev/null)"
  slurmd -f "$conf" ||
    cannot "slurmd did not start: $(tail -n 3 "$dir/log/slurmd.log" 2>/dev/null)"
  local n=0
  until node_up; do
    n=$((n + 1))
    # A daemon that died (a port in use, a bad line in slurm.conf) will not come back.
    if [ "$n" -gt 10 ] && ! { live_pid "$dir/slurmctld.pid" >/dev/null && live_pid "$dir/slurmd.pid" >/dev/null; }; then
      tail -n 3 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
      do_stop
      cannot "slurmctld or slurmd stopped right after starting (see the log lines above)"
    fi
    if [ "$n" -gt 300 ]; then
      sinfo >&2 || true
      tail -n 5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
      do_stop
      cannot "the node did not come up within 30 s"
    fi
    sleep 0.1
  done
  echo "SLURM_CONF=$conf"
}

case "$action" in
start) do_start ;;
stop) do_stop ;;
status) node_up ;;
esac
