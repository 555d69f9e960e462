# A one-node Slurm cluster for the tests (sourced by scripts/cluster-test.sh).
#   slurm_start   munged, slurmctld and slurmd on this host, everything (key, socket, state,
#                 logs, slurm.conf) in a temporary folder, on free ports; exports SLURM_CONF so
#                 that sbatch/squeue/scontrol talk to it
#   slurm_stop    stops those three daemons by the pids they wrote, waits for them, removes the
#                 folder; safe to call twice (the caller's EXIT trap calls it)
#   slurm_why_not prints why this machine cannot run it (not root, packages missing), or nothing
# Debian packages slurm-wlm and munge (scripts/setup.sh --services). The daemons run as root
# (slurmd must, to start jobs as their user); proctrack/linuxproc and task/none need no cgroups,
# so it works inside a container.

slurm_why_not() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurmd must run as root to start jobs, and this is uid $(id -u)"
    return
  fi
  local missing=()
  for tool in munged slurmctld slurmd sbatch squeue scontrol; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || echo "missing ${missing[*]} (Debian packages slurm-wlm and munge: scripts/setup.sh --services)"
}

slurm_start() {
  SLURM_TMP="$(mktemp -d "${TMPDIR:-/tmp}/detbench-slurm.XXXXXX")"
  local host port_ctld port_d
  host="$(hostname -s)"
  port_ctld="$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')"
  port_d="$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')"
  # munged wants its socket folder reachable by all and its key private.
  chmod 755 "$SLURM_TMP"
  mkdir -p "$SLURM_TMP"/{munge,key,state,spool,run,log}
  chmod 755 "$SLURM_TMP/munge"
  chmod 700 "$SLURM_TMP/key"
  dd if=/dev/urandom of="$SLURM_TMP/key/munge.key" bs=1024 count=1 status=none
  chmod 600 "$SLURM_TMP/key/munge.key"
  echo "[test] starting a one-node Slurm ($(slurmctld -V)) in $SLURM_TMP, host $host, ports $port_ctld/$port_d" >&2
  munged --socket="$SLURM_TMP/munge/munge.sock" --key-file="$SLURM_TMP/key/munge.key" \
    --pid-file="$SLURM_TMP/run/munged.pid" --log-file="$SLURM_TMP/log/munged.log" \
    --seed-file="$SLURM_TMP/key/munged.seed" \
    || { cat "$SLURM_TMP/log/munged.log" >&2; return 1; }
  cat >"$SLURM_TMP/slurm.conf" <<CONF
ClusterName=detbench-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port_ctld
SlurmdPort=$port_d
AuthType=auth/munge
AuthInfo=socket=$SLURM_TMP/munge/munge.sock
CryptoType=crypto/munge
StateSaveLocation=$SLURM_TMP/state
SlurmdSpoolDir=$SLURM_TMP/spool
SlurmctldPidFile=$SLURM_TMP/run/slurmctld.pid
SlurmdPidFile=$SLURM_TMP/run/slurmd.pid
SlurmctldLogFile=$SLURM_TMP/log/slurmctld.log
SlurmdLogFile=$SLURM_TMP/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF="$SLURM_TMP/slurm.conf"
  slurmctld -f "$SLURM_CONF" || { cat "$SLURM_TMP/log/slurmctld.log" >&2; return 1; }
  slurmd -f "$SLURM_CONF" || { cat "$SLURM_TMP/log/slurmd.log" >&2; return 1; }
  local waited=0
  until sinfo -h -o '%t' 2>/dev/null | grep -q idle; do
    sleep 0.5
    waited=$((waited + 1))
    if [ $waited -gt 60 ]; then
      echo "[test] the Slurm node did not come up in 30 s:" >&2
      tail -n 20 "$SLURM_TMP/log/slurmctld.log" "$SLURM_TMP/log/slurmd.log" >&2
      return 1
    fi
  done
  echo "[test] Slurm ready: $(sinfo -h -o '%P %a %D %t %N')" >&2
}

slurm_stop() {
  [ -n "${SLURM_TMP:-}" ] || return 0
  local daemon pid
  for daemon in slurmd slurmctld munged; do
    pid="$(cat "$SLURM_TMP/run/$daemon.pid" 2>/dev/null || true)"
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
    # Gone, or a zombie its parent has not reaped yet (it holds nothing any more).
    for _ in $(seq 50); do
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" = Z ] && break
      sleep 0.1
    done
  done
  rm -rf "$SLURM_TMP"
  echo "[test] Slurm stopped and $SLURM_TMP removed" >&2
  SLURM_TMP=""
}
