#!/usr/bin/env bash
# Build the harness's base images locally, with no container registry:
#
#   aeval/debian-python:bookworm  Debian bookworm rootfs (debootstrap minbase)
#                                 + python3 + venv at /opt/venv + host CA bundle,
#                                 imported with `docker import`
#   aeval/python-sci:bookworm     + numpy + SimpleITK        (python-sci/Dockerfile)
#   aeval/torch-cpu:2.13.0        + torch 2.13.0 CPU wheel   (torch-cpu/Dockerfile)
#
# Idempotent: an image that already exists is skipped unless --force; an
# image whose parent was (re)built in this run is rebuilt too. The rootfs
# tarball is cached outside the repository ($AEVAL_CACHE_DIR), keyed on the
# recipe, the mirror and the host CA bundle, so a rebuild does not re-run
# debootstrap.
#
# Usage: containers/base/build_bases.sh [--force] [--no-cache]
#   --force      rebuild all three images (rootfs cache and docker's layer
#                cache are still used)
#   --no-cache   like --force, and also ignore the rootfs cache and docker's
#                layer cache
#
# Environment:
#   AEVAL_CACHE_DIR               cache dir (default /var/cache/aeval as root,
#                                 else ${XDG_CACHE_HOME:-~/.cache}/aeval)
#   AEVAL_DEBIAN_MIRROR           Debian mirror (default: the host's apt one)
#   AEVAL_DEBIAN_SECURITY_MIRROR  security mirror (default: the host's apt one)
#   AEVAL_TORCH_WHEEL             torch wheel (default /opt/wheels/torch-2.13.0+cpu-cp311-...whl)
#   AEVAL_SKIP_ENSURE_DOCKER=1    do not call scripts/ensure_docker.sh first
#
# Needs root (debootstrap, chroot) and a Docker engine (scripts/ensure_docker.sh
# installs and starts one).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

SUITE=bookworm
IMG_DEBIAN="aeval/debian-python:bookworm"
IMG_SCI="aeval/python-sci:bookworm"
IMG_TORCH="aeval/torch-cpu:2.13.0"
TORCH_VERSION=2.13.0
TORCH_WHEEL="${AEVAL_TORCH_WHEEL:-/opt/wheels/torch-${TORCH_VERSION}+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}"
# Bump when the rootfs recipe below changes (invalidates the rootfs cache).
ROOTFS_RECIPE=3
ROOTFS_INCLUDE="python3,python3-venv,ca-certificates"
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

FORCE=0
NO_CACHE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --no-cache) FORCE=1; NO_CACHE=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

log() { printf '[build_bases] %s\n' "$*" >&2; }
die() { printf '[build_bases] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot need it)"

if [ "$(id -u)" -eq 0 ]; then
    CACHE_DIR="${AEVAL_CACHE_DIR:-/var/cache/aeval}"
else
    CACHE_DIR="${AEVAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aeval}"
fi
mkdir -p "$CACHE_DIR"

# One build at a time on this machine.
exec 9>"$CACHE_DIR/build_bases.lock"
flock -w 3600 9 || die "another build_bases.sh holds $CACHE_DIR/build_bases.lock"

# The legacy builder: BuildKit would need the buildx plugin, which a plain
# docker.io install lacks. (It prints a deprecation notice; that is expected.)
export DOCKER_BUILDKIT=0

# --- timing ----------------------------------------------------------------
SUMMARY=()
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
record() { SUMMARY+=("$(printf '%-34s %-10s %8s s' "$1" "$2" "$3")"); log "$1: $2 in $3 s"; }

T_ALL=$(now)

# --- docker ----------------------------------------------------------------
if [ "${AEVAL_SKIP_ENSURE_DOCKER:-0}" != 1 ]; then
    t=$(now)
    "$REPO/scripts/ensure_docker.sh" </dev/null
    record "ensure_docker" "ok" "$(elapsed "$t")"
fi
docker info >/dev/null 2>&1 || die "no Docker engine answers (run scripts/ensure_docker.sh)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# After a rebuild, drop the image the tag used to point at, so that --force
# does not pile up untagged GBs. `docker rmi` refuses (and we ignore it) when
# the old image is still tagged elsewhere or used by a container or child image.
drop_replaced() {  # $1: old id, $2: tag
    local new
    new=$(image_id "$2")
    if [ -n "$1" ] && [ "$1" != "$new" ]; then
        docker rmi "$1" >/dev/null 2>&1 && log "removed the replaced ${2} (${1:7:12})" || true
    fi
}

# --- mirrors ---------------------------------------------------------------
# The host's apt mirror URIs, from one-line (.list) and deb822 (.sources) files.
host_apt_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk '
            /^[[:space:]]*#/ { next }
            $1 == "deb" { for (i = 2; i <= NF; i++) { if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; continue } print $i; break } }
            tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }
        ' "$f"
    done | sed 's:/*$::'
}
pick_mirror() {  # $1: path suffix, e.g. /debian or /debian-security
    host_apt_uris | grep -E "^https?://[^ ]+$1\$" | head -n 1 || true
}
MIRROR="${AEVAL_DEBIAN_MIRROR:-$(pick_mirror /debian)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${AEVAL_DEBIAN_SECURITY_MIRROR:-$(pick_mirror /debian-security)}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

# --- 1. aeval/debian-python:bookworm ----------------------------------------
# Everything the rootfs depends on goes into the cache key.
[ -r "$HOST_CA_BUNDLE" ] || die "host CA bundle $HOST_CA_BUNDLE not found"
CA_SHA=$(sha256sum "$HOST_CA_BUNDLE" | cut -c1-64)
ROOTFS_KEY=$(printf '%s\n' "$ROOTFS_RECIPE" "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "$ROOTFS_INCLUDE" "$CA_SHA" \
             | sha256sum | cut -c1-12)
ROOTFS_TAR="$CACHE_DIR/debian-python-${SUITE}-${ROOTFS_KEY}.rootfs.tar"

WORK=""
cleanup() {
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        # Unmount what we (or a failed debootstrap) left mounted under it,
        # deepest first, and never rm -rf a tree with live mounts in it.
        local m
        awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r \
            | while read -r m; do umount -l "$m" || true; done
        if ! grep -qs " $WORK/" /proc/mounts; then rm -rf "$WORK"; else log "left $WORK (still mounted)"; fi
    fi
}
trap cleanup EXIT

in_chroot() {  # run a command in the rootfs with a clean environment
    chroot "$ROOTFS" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
        "$@"
}

make_rootfs_tar() {
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap missing (scripts/ensure_docker.sh installs it)"
    [ -r "$DEBIAN_KEYRING" ] || die "$DEBIAN_KEYRING missing (apt-get install debian-archive-keyring)"
    WORK=$(mktemp -d "$CACHE_DIR/work.XXXXXX")
    ROOTFS="$WORK/rootfs"

    local t
    t=$(now)
    log "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
    debootstrap --variant=minbase --components=main --include="$ROOTFS_INCLUDE" \
        --keyring="$DEBIAN_KEYRING" "$SUITE" "$ROOTFS" "$MIRROR"
    record "  debootstrap" "ok" "$(elapsed "$t")"

    t=$(now)
    mount -t proc proc "$ROOTFS/proc"
    cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    # No service starts inside the chroot or a later container build.
    printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
    chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"

    # apt sources (main + updates + security) so images built on this one can
    # apt-get install; the security updates are applied right away.
    rm -f "$ROOTFS/etc/apt/sources.list"
    cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Keep this image and the ones built on it small (as Debian's own
    # container images do): no docs but copyright files, no man pages, no
    # translations, no cached .debs or package lists.
    cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/aeval-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    cat > "$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
    in_chroot apt-get update -q
    in_chroot apt-get -y -q -o Dpkg::Options::=--force-confold upgrade
    record "  apt security upgrade" "ok" "$(elapsed "$t")"

    # The host's CA bundle: pip inside later `docker build`s must trust the
    # TLS-intercepting proxy in front of PyPI. update-ca-certificates keeps it
    # across any later regeneration of the bundle.
    t=$(now)
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    cp "$HOST_CA_BUNDLE" "$ROOTFS/usr/local/share/ca-certificates/host.crt"
    in_chroot update-ca-certificates --fresh >/dev/null

    in_chroot /usr/bin/python3 -m venv /opt/venv
    in_chroot /opt/venv/bin/python -m pip install -q --upgrade pip
    log "venv: $(in_chroot /opt/venv/bin/python -m pip --version)"
    record "  venv + pip upgrade" "ok" "$(elapsed "$t")"

    # Slim down.
    t=$(now)
    in_chroot apt-get clean
    umount "$ROOTFS/proc"
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* \
           "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
           "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
           "$ROOTFS"/usr/share/locale/* "$ROOTFS"/usr/share/lintian/* \
           "$ROOTFS"/root/.cache "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
    find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$ROOTFS/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
    find "$ROOTFS/var/log" -type f -exec truncate -s 0 {} +
    # Docker bind-mounts these at run time.
    : > "$ROOTFS/etc/resolv.conf"
    rm -f "$ROOTFS/etc/hostname"
    : > "$ROOTFS/etc/machine-id"

    # Exclude device nodes and the (empty) pseudo-filesystem mount points'
    # contents: the engine provides /dev, /proc and /sys.
    rm -f "$CACHE_DIR"/debian-python-"$SUITE"-*.rootfs.tar.partial
    tar -C "$ROOTFS" --numeric-owner --one-file-system \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf "$ROOTFS_TAR.partial" .
    # A new recipe/key supersedes older cached tarballs.
    find "$CACHE_DIR" -maxdepth 1 -name "debian-python-${SUITE}-*.rootfs.tar" ! -path "$ROOTFS_TAR" -delete
    mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
    record "  slim + tar rootfs" "$(du -m "$ROOTFS_TAR" | cut -f1) MiB" "$(elapsed "$t")"
    cleanup
    WORK=""
}

BUILT_DEBIAN=0
if [ "$FORCE" = 0 ] && image_exists "$IMG_DEBIAN"; then
    record "$IMG_DEBIAN" "exists" "0.0"
else
    t_img=$(now)
    old_id=$(image_id "$IMG_DEBIAN")
    if [ "$NO_CACHE" = 1 ] || [ ! -s "$ROOTFS_TAR" ]; then
        log "building the rootfs (cache: $ROOTFS_TAR)"
        make_rootfs_tar
    else
        log "using the cached rootfs $ROOTFS_TAR"
    fi
    t=$(now)
    docker import \
        --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV VIRTUAL_ENV=/opt/venv' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
        --change 'CMD ["python"]' \
        --message "aeval: debootstrap --variant=minbase $SUITE + python3 venv (recipe $ROOTFS_RECIPE)" \
        "$ROOTFS_TAR" "$IMG_DEBIAN" >/dev/null
    record "  docker import" "ok" "$(elapsed "$t")"
    docker run --rm --network none "$IMG_DEBIAN" python -c 'import ssl, sys, venv; print(sys.version)' >/dev/null \
        || die "$IMG_DEBIAN does not run python"
    record "$IMG_DEBIAN" "built" "$(elapsed "$t_img")"
    BUILT_DEBIAN=1
    REPLACED_DEBIAN="$old_id"
fi

# --- 2. aeval/python-sci:bookworm -------------------------------------------
build_args=(--pull=false --rm --force-rm)
[ "$NO_CACHE" = 1 ] && build_args+=(--no-cache)

BUILT_SCI=0
if [ "$FORCE" = 0 ] && [ "$BUILT_DEBIAN" = 0 ] && image_exists "$IMG_SCI"; then
    record "$IMG_SCI" "exists" "0.0"
else
    t=$(now)
    REPLACED_SCI=$(image_id "$IMG_SCI")
    docker build "${build_args[@]}" \
        --build-arg BASE_IMAGE="$IMG_DEBIAN" \
        -t "$IMG_SCI" "$HERE/python-sci"
    record "$IMG_SCI" "built" "$(elapsed "$t")"
    BUILT_SCI=1
fi

# --- 3. aeval/torch-cpu:2.13.0 -----------------------------------------------
if [ "$FORCE" = 0 ] && [ "$BUILT_SCI" = 0 ] && image_exists "$IMG_TORCH"; then
    record "$IMG_TORCH" "exists" "0.0"
else
    if [ ! -r "$TORCH_WHEEL" ]; then
        die "torch wheel not found: $TORCH_WHEEL
    aeval/torch-cpu needs the CPU wheel of torch $TORCH_VERSION for CPython 3.11 on disk
    (PyTorch's CPU index is not reachable from here, and PyPI's torch is the multi-GB CUDA build).
    Put it at that path or point AEVAL_TORCH_WHEEL at it."
    fi
    t=$(now)
    REPLACED_TORCH=$(image_id "$IMG_TORCH")
    CTX=$(mktemp -d "$CACHE_DIR/torch-ctx.XXXXXX")
    mkdir "$CTX/wheels"
    cp "$HERE/torch-cpu/Dockerfile" "$CTX/Dockerfile"
    ln "$TORCH_WHEEL" "$CTX/wheels/" 2>/dev/null || cp "$TORCH_WHEEL" "$CTX/wheels/"
    rc=0
    docker build "${build_args[@]}" \
        --build-arg BASE_IMAGE="$IMG_SCI" \
        --build-arg TORCH_WHEEL="$(basename "$TORCH_WHEEL")" \
        --build-arg TORCH_VERSION="${TORCH_VERSION}+cpu" \
        -t "$IMG_TORCH" "$CTX" || rc=$?
    rm -rf "$CTX"
    [ "$rc" = 0 ] || die "docker build of $IMG_TORCH failed"
    # The legacy builder keeps the install stage (wheel included) as an
    # untagged image; drop it (only ours: it carries this label).
    docker image prune -f --filter label=aeval.stage=torch-cpu-builder >/dev/null || true
    got=$(docker run --rm --network none "$IMG_TORCH" python -c 'import torch; print(torch.__version__)')
    [ "$got" = "${TORCH_VERSION}+cpu" ] || die "$IMG_TORCH has torch '$got', expected ${TORCH_VERSION}+cpu"
    record "$IMG_TORCH" "built" "$(elapsed "$t")"
fi

# Children first: a replaced parent is only removable once its children are.
drop_replaced "${REPLACED_TORCH:-}" "$IMG_TORCH"
drop_replaced "${REPLACED_SCI:-}" "$IMG_SCI"
drop_replaced "${REPLACED_DEBIAN:-}" "$IMG_DEBIAN"

# --- summary ----------------------------------------------------------------
echo
echo "== build_bases summary (total $(elapsed "$T_ALL") s) =="
printf '%s\n' "${SUMMARY[@]}"
echo
docker images --format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}' \
    | awk 'NR == 1 || /^aeval\/(debian-python|python-sci|torch-cpu):/'
