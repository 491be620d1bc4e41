#!/usr/bin/env bash
# A one-node Slurm cluster with accounting, every file under one directory, for rehearsing
# `run --executor slurm` on a laptop or a CI runner (README: "Rehearse on a one-node Slurm").
#
#   scripts/slurm_local.sh up DIR      start MariaDB, munged, slurmdbd, slurmctld and slurmd under DIR
#   scripts/slurm_local.sh down DIR    stop them (and any job still running), by their pid files
#   scripts/slurm_local.sh env DIR     print the `export SLURM_CONF=...` line the Slurm commands need
#
# Needs Debian's packages: apt-get install -y slurm-wlm munge slurmdbd mariadb-server (no service is
# enabled or touched: everything runs from DIR, on free TCP ports of 127.0.0.1).
# Partitions: debug (the default, never preempted), low (preemptible: requeued, GraceTime seconds of
# SIGTERM first) and high (preempts low). Environment knobs: SLURM_LOCAL_CPUS (default: this machine's),
# SLURM_LOCAL_MEM_MB (default: 4096), SLURM_LOCAL_GRACE (default: 15 s).
set -euo pipefail

usage() {
    echo "usage: $0 up|down|env DIR" >&2
    exit 2
}
[[ $# -eq 2 ]] || usage
action=$1
[[ -n $2 ]] || usage
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
ETC=$DIR/etc RUN=$DIR/run LOG=$DIR/log
CONF=$ETC/slurm.conf
CLUSTER=lgmbench
NODE=lgmnode
export SLURM_CONF=$CONF

die() {
    echo "slurm_local: $*" >&2
    exit 1
}

# the pid in pid file $1, if that process is alive and is ours (its command line or environment names DIR)
our_pid() {
    local file=$1 pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid && -d /proc/$pid ]] || return 1
    if { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$DIR" ||
        { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$CONF"; then
        echo "$pid"
        return 0
    fi
    return 1
}

stop_pid() {  # stop_pid NAME PIDFILE: TERM, up to 10 s, then KILL
    local name=$1 file=$2 pid
    pid=$(our_pid "$file") || { rm -f "$file"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
        echo "slurm_local: $name (pid $pid) did not stop on SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq $((seconds * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what did not come up within ${seconds} s; see the logs under $LOG"
}

free_ports() {  # N free TCP ports on 127.0.0.1 (bound and released: free right now)
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

up() {
    for cmd in mariadbd mariadb-install-db munged slurmdbd slurmctld slurmd sacctmgr; do
        command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] ||
            die "$cmd is missing: apt-get install -y slurm-wlm munge slurmdbd mariadb-server"
    done
    export PATH=$PATH:/usr/sbin
    if our_pid "$RUN/slurmctld.pid" >/dev/null; then
        echo "slurm_local: already up under $DIR"
        return 0
    fi
    down quiet  # whatever a previous, half-started cluster left running
    mkdir -p "$ETC" "$RUN" "$LOG" "$DIR/munge" "$DIR/state/ctld" "$DIR/state/slurmd" "$DIR/mysql"
    chmod 700 "$DIR/munge"
    local user host cpus mem grace
    user=$(id -un)
    host=$(hostname -s)
    cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
    mem=${SLURM_LOCAL_MEM_MB:-4096}
    grace=${SLURM_LOCAL_GRACE:-15}
    read -r db_port dbd_port ctld_port d_port <<<"$(free_ports 4)"
    local socket=$DIR/munge/munge.socket.2
    local auth="AuthType=auth/munge
AuthInfo=socket=$socket"

    # munge: a fresh key, its own socket
    [[ -s $ETC/munge.key ]] || { dd if=/dev/urandom of="$ETC/munge.key" bs=1024 count=1 status=none; }
    chmod 400 "$ETC/munge.key"
    munged --force --socket="$socket" --key-file="$ETC/munge.key" --pid-file="$RUN/munged.pid" \
        --log-file="$LOG/munged.log" --seed-file="$DIR/munge/munged.seed" >>"$LOG/munged.log" 2>&1
    wait_for munged 10 test -S "$socket"

    # MariaDB: its own data directory, socket and port; a database and user for slurmdbd
    if [[ ! -d $DIR/mysql/mysql ]]; then
        mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user="$user" --skip-test-db \
            --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed; see $LOG/mariadb-install.log"
    fi
    mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$RUN/mysql.sock" --port="$db_port" \
        --bind-address=127.0.0.1 --pid-file="$RUN/mariadb.pid" --log-error="$LOG/mariadb.log" --user="$user" \
        --skip-name-resolve --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
    wait_for MariaDB 30 mariadb --no-defaults --socket="$RUN/mysql.sock" -u "$user" -e "select 1"
    mariadb --no-defaults --socket="$RUN/mysql.sock" -u "$user" -e "
        CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

    cat >"$ETC/slurmdbd.conf" <<EOF
$auth
DbdHost=$host
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=$user
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$ETC/slurmdbd.conf"

    cat >"$CONF" <<EOF
# written by scripts/slurm_local.sh: a one-node cluster under $DIR
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
# cred_expire: how long a requeued job waits before it may start again (Slurm's default: 120 s)
AuthInfo=socket=$socket,cred_expire=10
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
# schedule every second, not every 30-60 s: a requeued job starts as soon as it may
SchedulerParameters=bf_interval=1,sched_interval=1
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
AccountingStoragePass=$socket
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=$NODE NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF
PartitionName=low Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=$grace
PartitionName=high Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF

    slurmdbd >>"$LOG/slurmdbd.log" 2>&1
    wait_for slurmdbd 30 sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    slurmctld -f "$CONF" >>"$LOG/slurmctld.log" 2>&1
    wait_for slurmctld 30 scontrol ping
    slurmd -f "$CONF" -N "$NODE" >>"$LOG/slurmd.log" 2>&1
    wait_for "node $NODE" 30 node_idle
    echo "slurm_local: up under $DIR (cluster $CLUSTER, node $NODE: $cpus CPUs, $mem MB; partitions debug, low, high)"
    echo "export SLURM_CONF=$CONF"
}

node_idle() {
    sinfo -h -n "$NODE" -o %T | grep -qx idle
}

# job processes of this cluster still alive: their environment names our slurm.conf and a job id
job_processes() {
    local proc pid env
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [[ $pid == "$$" ]] && continue
        env=$({ tr '\0' '\n' <"$proc/environ"; } 2>/dev/null) || continue
        grep -qxF "SLURM_CONF=$CONF" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env" || continue
        echo "$pid"
    done
}

down() {
    local quiet=${1:-}
    export PATH=$PATH:/usr/sbin
    if our_pid "$RUN/slurmctld.pid" >/dev/null; then
        scancel --quiet --full --user="$(id -un)" 2>/dev/null || true  # the jobs first: slurmd ends their steps
        for _ in $(seq 50); do
            [[ -z $(squeue -h -t running,completing 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    stop_pid slurmd "$RUN/slurmd.pid"
    stop_pid slurmctld "$RUN/slurmctld.pid"
    stop_pid slurmdbd "$RUN/slurmdbd.pid"
    stop_pid MariaDB "$RUN/mariadb.pid"
    stop_pid munged "$RUN/munged.pid"
    local left
    left=$(job_processes)
    if [[ -n $left ]]; then
        echo "slurm_local: stopping job processes still running: $(echo "$left" | tr '\n' ' ')" >&2
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
    fi
    [[ $quiet == quiet ]] || echo "slurm_local: down ($DIR)"
}

case $action in
up) up ;;
down) down ;;
env) echo "export SLURM_CONF=$CONF" ;;
*) usage ;;
esac
