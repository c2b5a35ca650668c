#!/usr/bin/env bash
# Stop the test SLURM cluster that tests/slurm/start_slurm.sh started: slurmd, slurmctld, then munged, each by
# the pid recorded in $DARKCLUSTERS_SLURM_STATE (default /tmp/darkclusters-slurm) and only when that pid is
# still the expected daemon. A munged that was running before start_slurm.sh has no pid file there and is left
# alone. Removes the /etc/slurm config files only when start_slurm.sh wrote them. Safe to run twice.
set -euo pipefail

STATE=${DARKCLUSTERS_SLURM_STATE:-/tmp/darkclusters-slurm}
CONF_DIR=/etc/slurm
MARKER="# written by darkclusters tests/slurm/start_slurm.sh"

# stop_daemon PIDFILE NAME: SIGTERM the process in PIDFILE if it is NAME, wait up to 15 s, then SIGKILL.
stop_daemon() {
    local pidfile=$1 name=$2 pid i
    if [[ ! -s $pidfile ]]; then
        echo "$name: no pid file ($pidfile), nothing to stop"
        return 0
    fi
    pid=$(<"$pidfile")
    if [[ ! $pid =~ ^[0-9]+$ ]] || [[ ! -r /proc/$pid/comm ]] || [[ $(<"/proc/$pid/comm") != "$name" ]]; then
        echo "$name: pid ${pid:-?} in $pidfile is not running $name, nothing to stop"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    for ((i = 0; i < 30; i++)); do
        [[ -e /proc/$pid ]] || break
        sleep 0.5
    done
    if [[ -e /proc/$pid ]] && [[ $(<"/proc/$pid/comm") == "$name" ]]; then
        echo "$name (pid $pid) ignored SIGTERM for 15 s: SIGKILL" >&2
        kill -KILL "$pid"
    fi
    rm -f "$pidfile"
    echo "$name (pid $pid) stopped"
}

stop_daemon "$STATE/slurmd.pid" slurmd
stop_daemon "$STATE/slurmctld.pid" slurmctld
stop_daemon "$STATE/munge/munged.pid" munged

for conf in "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"; do
    if [[ -f $conf ]] && grep -qxF "$MARKER" "$conf"; then
        rm -f "$conf"
    fi
done
