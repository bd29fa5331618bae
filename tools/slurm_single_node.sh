#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing `--executor slurm` for real (tests/test_slurm.py).
#
#   sudo bash tools/slurm_single_node.sh          # install (Debian: slurm-wlm, munge), configure, start
#   sudo bash tools/slurm_single_node.sh stop     # stop the daemons
#
# One node named after this host with all its cores, one partition `debug`, no cgroups (proctrack
# linuxproc, task/none), no accounting. Runs as root in a container; a real cluster needs none of this.
set -euo pipefail
HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf

if [[ "${1:-start}" == stop ]]; then
  pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x munged || true
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key and its directories, owned by root (the daemons run as root here)
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
chown -R root:root /etc/munge /var/lib/munge /var/log/munge /run/munge
[[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chmod 400 /etc/munge/munge.key
chmod 755 /run/munge
pgrep -x munged >/dev/null || munged --force --key-file=/etc/munge/munge.key

CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$CONF" <<EOF
ClusterName=bnopt-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
# no cgroup.conf: Slurm 22.05 (Debian 12) has no "disabled" cgroup plugin, and without the file
# slurmd starts with proctrack/linuxproc and task/none

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 30); do
  if sinfo -h -o %t 2>/dev/null | grep -qE 'idle|mix'; then
    sinfo
    exit 0
  fi
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "Slurm did not come up; see /var/log/slurm/*.log" >&2
sinfo || true
exit 1
