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

# --- 2. start dockerd ------------------------------------------------------
if pgrep -x dockerd >/dev/null 2>&1; then
    log "a dockerd process is already running; waiting for it to answer"
else
    args=()
    # overlay2 where the kernel has overlayfs, unless a daemon.json already
    # picks a storage driver (passing both makes dockerd refuse to start).
    if ! grep -qs '"storage-driver"' /etc/docker/daemon.json; then
        if grep -qw overlay /proc/filesystems || "${SUDO[@]}" modprobe overlay >/dev/null 2>&1; then
            args+=(--storage-driver=overlay2)
        else
            log "overlayfs unavailable: letting dockerd pick its storage driver"
        fi
    fi
    # shellcheck disable=SC2206  # word splitting of DOCKERD_ARGS is intended
    args+=($DOCKERD_ARGS)
    "${SUDO[@]}" mkdir -p "$(dirname "$DOCKERD_LOG")"
    log "starting dockerd ${args[*]} (log: $DOCKERD_LOG)"
    # cgroup v1 hosts without systemd may lack the cgroup mounts dockerd needs.
    if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/cpu ] \
        && command -v cgroupfs-mount >/dev/null 2>&1; then
        "${SUDO[@]}" cgroupfs-mount || log "cgroupfs-mount failed (continuing)"
    fi
    "${SUDO[@]}" setsid nohup dockerd "${args[@]}" </dev/null >>"$DOCKERD_LOG" 2>&1 &
    disown || true
fi

# --- 3. wait ---------------------------------------------------------------
start=$(date +%s)
deadline=$(( start + DOCKER_WAIT_S ))
until docker_answers; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        log "dockerd did not answer within ${DOCKER_WAIT_S} s. Last lines of $DOCKERD_LOG:"
        tail -n 40 "$DOCKERD_LOG" >&2 2>/dev/null || "${SUDO[@]}" tail -n 40 "$DOCKERD_LOG" >&2 || true
        die "Docker engine not available"
    fi
    # (grace period: right after the launch the process may not be exec'd yet)
    if [ "$(date +%s)" -ge $(( start + 3 )) ] && ! pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd exited. Last lines of $DOCKERD_LOG:"
        tail -n 40 "$DOCKERD_LOG" >&2 2>/dev/null || "${SUDO[@]}" tail -n 40 "$DOCKERD_LOG" >&2 || true
        die "dockerd failed to start"
    fi
    sleep 1
done
log "docker answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
