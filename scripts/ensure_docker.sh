#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
#
# Idempotent: if `docker info` already answers, exit 0 at once. Otherwise
#   1. apt-get install docker.io (and debootstrap, which containers/base needs)
#      if they are missing,
#   2. start dockerd in the background (setsid/nohup, log to $DOCKERD_LOG),
#      with the overlay2 storage driver where the kernel supports it,
#   3. wait up to $DOCKER_WAIT_S seconds for `docker info` to answer; on
#      failure print a clear error and the tail of the dockerd log.
#
# Meant for CI machines and dev boxes without systemd: runs as root with no TTY
# and no stdin. Leaves dockerd running on exit (other jobs use it).
#
# Environment:
#   DOCKERD_LOG     dockerd's log file      (default /var/log/dockerd.log)
#   DOCKER_WAIT_S   seconds to wait for it  (default 60)
#   DOCKERD_ARGS    extra dockerd arguments (default none)
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKER_WAIT_S="${DOCKER_WAIT_S:-60}"
DOCKERD_ARGS="${DOCKERD_ARGS:-}"

log() { printf '[ensure_docker] %s\n' "$*" >&2; }
die() { printf '[ensure_docker] ERROR: %s\n' "$*" >&2; exit 1; }

# Run as root, or through sudo (non-interactive) when that is available.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        die "not root and no sudo: cannot install or start dockerd"
    fi
fi

docker_answers() {
    command -v docker >/dev/null 2>&1 || return 1
    # Timeout so a half-started daemon cannot hang us; use sudo only if
    # the socket is not readable by the current user.
    if timeout 20 docker info >/dev/null 2>&1; then return 0; fi
    [ "${#SUDO[@]}" -gt 0 ] && "${SUDO[@]}" timeout 20 docker info >/dev/null 2>&1
}

if docker_answers; then
    log "docker already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

# --- 1. install -------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} with apt-get"
    t0=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    # needrestart (a docker.io Recommends) must not prompt.
    export NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    # Recommends are kept on purpose: apparmor (needed where the kernel has
    # AppArmor on), xz-utils, ca-certificates, cgroupfs-mount.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1 \
        apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null
    log "apt-get install took $(( $(date +%s) - t0 )) s"
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd still not found after install"

# --- 2. start dockerd and 3. wait for it -----------------------------------
LOG_FROM=1   # first line of $DOCKERD_LOG written by the dockerd we started
new_log() { tail -n "+$LOG_FROM" "$DOCKERD_LOG" 2>/dev/null || true; }
show_log() {
    log "$1. Errors and last lines of $DOCKERD_LOG:"
    {
        new_log | grep -E 'level=(error|fatal)|failed to start' | tail -n 8
        echo '---'
        new_log | tail -n 25
    } >&2 || true
}

start_dockerd() {  # args: dockerd arguments
    "${SUDO[@]}" mkdir -p "$(dirname "$DOCKERD_LOG")"
    LOG_FROM=$(( $(wc -l < "$DOCKERD_LOG" 2>/dev/null || echo 0) + 1 ))
    log "starting dockerd $* (log: $DOCKERD_LOG)"
    # cgroup v1 hosts without systemd may lack the cgroup mounts dockerd needs.
    if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/cpu ] \
        && command -v cgroupfs-mount >/dev/null 2>&1; then
        "${SUDO[@]}" cgroupfs-mount || log "cgroupfs-mount failed (continuing)"
    fi
    "${SUDO[@]}" setsid nohup dockerd "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 &
    disown || true
}

wait_for_docker() {  # 0: answers; 1: timed out; 2: dockerd exited
    local start deadline
    start=$(date +%s)
    deadline=$(( start + DOCKER_WAIT_S ))
    until docker_answers; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        # (grace period: right after the launch the process may not be exec'd yet)
        if [ "$(date +%s)" -ge $(( start + 3 )) ] && ! pgrep -x dockerd >/dev/null 2>&1; then
            return 2
        fi
        sleep 1
    done
}

if pgrep -x dockerd >/dev/null 2>&1; then
    log "a dockerd process is already running; waiting for it to answer"
    rc=0; wait_for_docker || rc=$?
else
    extra=()
    # shellcheck disable=SC2206  # word splitting of DOCKERD_ARGS is intended
    extra=($DOCKERD_ARGS)
    storage=()
    # overlay2 where the kernel has overlayfs, unless a daemon.json or
    # DOCKERD_ARGS already picks a storage driver (dockerd refuses both).
    if ! grep -qs '"storage-driver"' /etc/docker/daemon.json \
        && [[ " $DOCKERD_ARGS " != *" --storage-driver"* ]] && [[ " $DOCKERD_ARGS " != *" -s "* ]]; then
        if grep -qw overlay /proc/filesystems || "${SUDO[@]}" modprobe overlay >/dev/null 2>&1; then
            storage=(--storage-driver=overlay2)
        else
            log "overlayfs unavailable: letting dockerd pick its storage driver"
        fi
    fi
    start_dockerd "${storage[@]}" "${extra[@]}"
    rc=0; wait_for_docker || rc=$?
    if [ "$rc" = 2 ] && [ "${#storage[@]}" -gt 0 ] && new_log | grep -qE 'graphdriver|overlay'; then
        show_log "dockerd exited with overlay2"
        log "retrying once without --storage-driver (dockerd picks one; vfs is slow and large)"
        start_dockerd "${extra[@]}"
        rc=0; wait_for_docker || rc=$?
    fi
fi
case "$rc" in
    0) log "docker answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))" ;;
    1) show_log "dockerd did not answer within ${DOCKER_WAIT_S} s"; die "Docker engine not available" ;;
    *) show_log "dockerd exited"; die "dockerd failed to start" ;;
esac
