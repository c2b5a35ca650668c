#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine for `pytest -m slurm` (Debian 12, root, no systemd):
# munged, slurmctld and slurmd on localhost with partitions `cpu` (default) and `gpu` and two fake GPUs
# (gres.conf: File=/dev/null and File=/dev/zero; a job that asks for one sees CUDA_VISIBLE_DEVICES=0, for two 0,1).
#
#   apt-get install -y --no-install-recommends slurm-wlm munge   # once
#   tests/slurm/start_slurm.sh                                   # idempotent: a running daemon is left alone
#   tests/slurm/stop_slurm.sh                                    # stops, by pid, only what this started
#
# State (pid files, logs, spool, controller state) lives in $DARKCLUSTERS_SLURM_STATE (default
# /tmp/darkclusters-slurm). The config goes to /etc/slurm/{slurm,gres}.conf so that plain sbatch/squeue work;
# an existing slurm.conf that this script did not write is never overwritten (the script stops instead).
set -euo pipefail

STATE=${DARKCLUSTERS_SLURM_STATE:-/tmp/darkclusters-slurm}
CONF_DIR=/etc/slurm
MARKER="# written by darkclusters tests/slurm/start_slurm.sh"
MUNGE_SOCKET_DIR=/run/munge

die() {
    echo "start_slurm.sh: $*" >&2
    exit 1
}

# alive PIDFILE NAME: true when PIDFILE names a live process whose command is NAME.
alive() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] && [[ $(<"/proc/$pid/comm") == "$name" ]]
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local i
    for ((i = 0; i < seconds * 2; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    die "timed out after ${seconds}s waiting for $what (logs: $STATE/log)"
}

[[ $(id -u) -eq 0 ]] || die "must run as root (the daemons drop to the slurm and munge users themselves)"
for tool in munged slurmctld slurmd sinfo scontrol; do
    command -v "$tool" >/dev/null ||
        die "$tool not found: apt-get install -y --no-install-recommends slurm-wlm munge"
done
id slurm >/dev/null 2>&1 || die "user 'slurm' missing (installed by the slurm-wlm package)"
id munge >/dev/null 2>&1 || die "user 'munge' missing (installed by the munge package)"

mkdir -p "$STATE"/{log,ctld,spool,munge}
chown slurm:slurm "$STATE"/{log,ctld}
chown munge:munge "$STATE/munge"

# --- munge: authentication for every SLURM call ---
mkdir -p "$MUNGE_SOCKET_DIR"
chown munge:munge "$MUNGE_SOCKET_DIR"
chmod 0755 "$MUNGE_SOCKET_DIR"
if [[ ! -s /etc/munge/munge.key ]]; then
    runuser -u munge -- mungekey -c
fi
if alive "$STATE/munge/munged.pid" munged; then
    echo "munged already running (pid $(<"$STATE/munge/munged.pid"))"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "munged already running, not started by this script: leaving it alone"
else
    runuser -u munge -- munged --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log"
    wait_for 20 "munged" bash -c 'munge -n | unmunge'
    echo "munged started (pid $(<"$STATE/munge/munged.pid"))"
fi

# --- config, sized from this machine ---
if [[ -e $CONF_DIR/slurm.conf ]] && ! grep -qxF "$MARKER" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script: not overwriting a real config"
fi
cpus=$(nproc)
mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
real_memory_mb=$((mem_total_mb > 1536 ? mem_total_mb - 512 : mem_total_mb))
mkdir -p "$CONF_DIR"
conf_tmp=$(mktemp "$CONF_DIR/.slurm.conf.XXXXXX")
cat >"$conf_tmp" <<EOF
$MARKER
# A one-node test cluster: $cpus CPUs, $real_memory_mb MB, two fake GPUs. State in $STATE.
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmdSpoolDir=$STATE/spool
StateSaveLocation=$STATE/ctld
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
# Finished jobs stay visible to squeue/scontrol for 10 min (>= 3x slurm-init-seconds-before-status-checks).
MinJobAge=600
GresTypes=gpu
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_memory_mb Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP
EOF
chmod 0644 "$conf_tmp"
mv -f "$conf_tmp" "$CONF_DIR/slurm.conf"
# Two fake GPUs (any character device works as File=; no cgroup confines them with task/none): a multi-GPU job
# (tests/test_slurm.py, torchrun with 2 ranks) can be scheduled.
printf '%s\nNodeName=localhost Name=gpu File=/dev/null\nNodeName=localhost Name=gpu File=/dev/zero\n' "$MARKER" \
    >"$CONF_DIR/gres.conf"

# --- daemons ---
if alive "$STATE/slurmctld.pid" slurmctld; then
    echo "slurmctld already running (pid $(<"$STATE/slurmctld.pid"))"
else
    slurmctld
    wait_for 30 "slurmctld" scontrol ping
    echo "slurmctld started (pid $(<"$STATE/slurmctld.pid"))"
fi
if alive "$STATE/slurmd.pid" slurmd; then
    echo "slurmd already running (pid $(<"$STATE/slurmd.pid"))"
else
    slurmd -N localhost  # -N: the NodeName (localhost) differs from `hostname -s`
    wait_for 30 "slurmd pid file" test -s "$STATE/slurmd.pid"
    echo "slurmd started (pid $(<"$STATE/slurmd.pid"))"
fi

node_ready() {
    local state
    state=$(sinfo -h -N -n localhost -o %T 2>/dev/null | head -n1)
    case $state in
    idle* | mixed* | allocated* | completing*) return 0 ;;
    drain* | down*) scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    return 1
}
wait_for 60 "node localhost to become idle" node_ready
sinfo
