# Sourced by the benchmark scripts. A CPU cgroup with cpu.idle 1 for a process that stands in for another
# machine on a one-machine benchmark (a client listing everything, the trace collector): it gets only the CPU
# that the measured processes leave, and its time is not charged to their group. A thread's nice value or
# SCHED_IDLE class alone ranks it only inside its own group, which still competes as a whole.
#   idle_cgroup_create NAME  sets IDLE_CG_DIR to a new cgroup in the cgroup v1 cpu hierarchy, or to "" where
#                            there is none writable (not root, cgroup v2 only)
#   idle_cgroup_join         moves the calling shell ($BASHPID) into it, if there is one
#   idle_cgroup_spin RATE S  the floor beside a measured process: busy loops that do nothing but use RATE CPUs
#                            (e.g. 0.25) for S seconds at the idle class, in a child of the cgroup capped at
#                            RATE by the CFS quota, as much spare CPU as the process they stand for used; their
#                            pids in SPIN_PIDS. Without a cgroup it starts nothing (a floor needs the quota).
#   idle_cgroup_remove       removes it once its tasks have exited
IDLE_CG_DIR=""
idle_cgroup_create() {
  local hierarchy
  hierarchy=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ { print $2; exit }' /proc/self/mounts)
  IDLE_CG_DIR=""
  if [ -n "$hierarchy" ] && [ -w "$hierarchy/tasks" ]; then
    IDLE_CG_DIR=$hierarchy/$1-$$
    mkdir "$IDLE_CG_DIR"
    echo 1 >"$IDLE_CG_DIR/cpu.idle"
  fi
}
idle_cgroup_join() {
  if [ -n "$IDLE_CG_DIR" ]; then echo "$BASHPID" >"$IDLE_CG_DIR/tasks"; fi
}
SPIN_PIDS=()
idle_cgroup_spin() {
  local rate=$1 seconds=$2 dir=$IDLE_CG_DIR/spin period=100000 quota
  SPIN_PIDS=()
  [ -n "$IDLE_CG_DIR" ] || return 0
  [ -d "$dir" ] || mkdir "$dir"
  quota=$(awk -v r="$rate" -v p="$period" 'BEGIN { q = int(r * p); print (q < 1000 ? 1000 : q) }')
  echo "$period" >"$dir/cpu.cfs_period_us"
  echo "$quota" >"$dir/cpu.cfs_quota_us"
  for _ in $(seq 1 "$(nproc)"); do
    (
      echo "$BASHPID" >"$dir/tasks"
      exec chrt --idle 0 timeout "$seconds" bash -c 'while :; do :; done'
    ) &
    SPIN_PIDS+=($!)
  done
}
idle_cgroup_remove() {
  [ -n "$IDLE_CG_DIR" ] || return 0
  if [ -d "$IDLE_CG_DIR/spin" ]; then
    for _ in $(seq 1 100); do rmdir "$IDLE_CG_DIR/spin" 2>/dev/null && break; sleep 0.1; done
  fi
  for _ in $(seq 1 100); do rmdir "$IDLE_CG_DIR" 2>/dev/null && return 0; sleep 0.1; done
}
