#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for labdeck's `slurm` tests and for
# trying the Slurm launcher without a cluster: Debian's slurm-wlm + munge, with accounting
# (slurmdbd on Debian's mariadb) so `sacct` and submitit's job states work as on a real
# cluster. One `debug` partition holds this machine's CPUs and memory.
#
#   scripts/local-slurm.sh          install what is missing, then start what is not running
#   scripts/local-slurm.sh --stop   stop the daemons (packages and configuration stay)
#
# Needs root and a working apt (Debian/Ubuntu). Safe to run again: every step checks first.
# Daemons run in the foreground-less classic way (no systemd), so it works in containers.
set -euo pipefail

CLUSTER=labdeck
ETC=/etc/slurm
DBPASS=labdeck-slurmdbd   # the accounting database is local to this machine only
LOGDIR=/var/log/slurm

log() { echo "local-slurm: $*" >&2; }
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
any_running() { for d in "$@"; do pgrep -x "$d" >/dev/null && return 0; done; return 1; }
die() { log "error: $*"; exit 1; }

stop_all() {
  for d in slurmd slurmctld slurmdbd; do
    if pgrep -x "$d" >/dev/null; then pkill -x "$d" || true; fi
  done
  for _ in $(seq 50); do any_running slurmd slurmctld slurmdbd || break; sleep 0.1; done
  if [ -x /etc/init.d/mariadb ]; then /etc/init.d/mariadb stop >/dev/null 2>&1 || true; fi
  if pgrep -x munged >/dev/null; then pkill -x munged || true; fi
  for _ in $(seq 50); do munge_ok || break; sleep 0.1; done
  log "stopped"
}

if [ "${1:-}" = "--stop" ]; then stop_all; exit 0; fi
[ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts system daemons)"
command -v apt-get >/dev/null || die "needs apt-get (Debian's slurm-wlm, munge, mariadb)"

# ---------------------------------------------------------------- packages
PKGS=(slurm-wlm slurmdbd munge mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d 101: the packages must not try to start services through init scripts here.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# ---------------------------------------------------------------- configuration
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
mkdir -p "$ETC" "$LOGDIR" /var/spool/slurmctld /var/spool/slurmd /run/munge /var/run/slurm

want_conf=$(cat <<EOF
# written by labdeck scripts/local-slurm.sh
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/var/run/slurm/slurmctld.pid
SlurmdPidFile=/var/run/slurm/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=sched_interval=1
MessageTimeout=20
KillWait=10
MinJobAge=300
JobRequeue=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)
changed=0
if [ "$(cat "$ETC/slurm.conf" 2>/dev/null)" != "$want_conf" ]; then
  echo "$want_conf" >"$ETC/slurm.conf"
  changed=1
fi
want_dbd=$(cat <<EOF
# written by labdeck scripts/local-slurm.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/var/run/slurm/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
)
if [ "$(cat "$ETC/slurmdbd.conf" 2>/dev/null)" != "$want_dbd" ]; then
  echo "$want_dbd" >"$ETC/slurmdbd.conf"
  changed=1
fi
chmod 600 "$ETC/slurmdbd.conf"
if [ $changed = 1 ] && any_running slurmd slurmctld slurmdbd; then
  log "configuration changed: restarting the Slurm daemons"
  pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x slurmdbd || true
  for _ in $(seq 50); do any_running slurmd slurmctld slurmdbd || break; sleep 0.1; done
fi

# ---------------------------------------------------------------- daemons
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local n=$(( $1 * 10 )) what=$2; shift 2
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$what did not come up (see $LOGDIR/)"
}

[ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || /usr/sbin/create-munge-key -f; }
chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
if ! munge_ok; then  # (a pgrep could match a daemon that is just exiting)
  runuser -u munge -- /usr/sbin/munged --force
fi
wait_for 10 munged munge_ok

if ! /usr/bin/mysqladmin ping >/dev/null 2>&1; then
  /etc/init.d/mariadb start >/dev/null
fi
wait_for 30 mariadb /usr/bin/mysqladmin ping
mysql -u root <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF

if ! pgrep -x slurmdbd >/dev/null; then slurmdbd; fi
wait_for 30 slurmdbd sacctmgr -n show cluster
if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if ! pgrep -x slurmctld >/dev/null; then slurmctld; fi
wait_for 30 slurmctld scontrol ping
if ! pgrep -x slurmd >/dev/null; then slurmd; fi
wait_for 30 "slurmd (node $HOST)" sh -c "sinfo -h -N -o %T | grep -Eq '^(idle|mixed|allocated)'"
log "up: partition debug, node $HOST, $CPUS CPUs, $MEM_MB MB (sacct: $(sacct -n -X -S now-1minute >/dev/null 2>&1 && echo ok || echo unavailable))"
