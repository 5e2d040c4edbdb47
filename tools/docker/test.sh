#!/usr/bin/env bash
# `make docker-test`: build the co2fi image with CUDA compiled in, then run pycaffe's tests and a
# tiny demo inside it on the CPU, with a host folder mounted for the outputs.
#
#  1. Engine: docker where its daemon answers, else podman (as root, with runc: crun cannot set
#     its rlimits on these machines, hence also --ulimit nofile/nproc).
#  2. Base: --base IMAGE, else a local Debian 12 minbase made with debootstrap from the mirror apt
#     already uses, kept as a tarball in ~/.cache/co2fi/docker/ and imported as
#     localhost/co2fi-base:debian12 (CUDA then comes from PyPI wheels: see Dockerfile).
#  3. Build: `<engine> build` of the Dockerfile (the layer cache makes a second build fast).
#  4. Run: tools/docker/check_image.sh in the image, as the invoking user (SUDO_UID:SUDO_GID
#     under sudo, else the caller's uid:gid, root for root), so the outputs in OUT are theirs.
#
# Usage: tools/docker/test.sh [--engine docker|podman] [--base IMAGE] [--cuda-arch LIST]
#                             [--tag TAG] [--out DIR] [--jobs N]
# Environment: CO2FI_DOCKER_ENGINE, CO2FI_DOCKER_BASE, CO2FI_DOCKER_CUDA_ARCH, CO2FI_DOCKER_OUT,
#   CO2FI_DEBIAN_MIRROR (the debootstrap mirror), CO2FI_CACHE (default ~/.cache/co2fi).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${CO2FI_CACHE:-$HOME/.cache/co2fi}
engine=${CO2FI_DOCKER_ENGINE:-}
base=${CO2FI_DOCKER_BASE:-}
# The local base's CUDA 13 (PyPI wheels) cannot compile for Volta: Turing to Hopper + PTX.
arch=${CO2FI_DOCKER_CUDA_ARCH:-}
tag=localhost/co2fi:test
out=${CO2FI_DOCKER_OUT:-$repo/runs/docker-test}
jobs=""
t_start=$(date +%s)
readonly LOCAL_BASE=localhost/co2fi-base:debian12
readonly LOCAL_ARCH="75 80 86 89 90 +PTX"

die() { echo "docker-test: error: $*" >&2; exit 1; }
say() { echo "docker-test: $*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --cuda-arch) arch=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# ---- 1. Engine -------------------------------------------------------------------------------
if [ -z "$engine" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null; then
    engine=podman
  elif command -v docker >/dev/null; then
    die "docker is installed but its daemon does not answer (docker info); start it, or as root: apt-get install podman runc"
  else
    die "no container engine: install docker, or as root: apt-get install podman runc"
  fi
fi
eng=("$engine")
run_opts=()
build_opts=()
case "$engine" in
  podman)
    command -v podman >/dev/null || die "--engine podman: podman is not installed (as root: apt-get install podman runc)"
    [ "$(id -u)" = 0 ] || die "podman runs here as root only: run 'sudo make docker-test'"
    if command -v runc >/dev/null; then eng+=(--runtime runc)
    else say "runc not found: using podman's default runtime (if it fails: apt-get install runc)"; fi
    run_opts=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    build_opts=("${run_opts[@]}")
    ;;
  docker)
    command -v docker >/dev/null || die "--engine docker: docker is not installed"
    docker info >/dev/null 2>&1 || die "docker's daemon does not answer (docker info): start it, or use --engine podman"
    ;;
  *) die "--engine must be docker or podman, not '$engine'" ;;
esac
"${eng[@]}" info >/dev/null 2>&1 || die "'${eng[*]} info' fails: the engine cannot run here ($("${eng[@]}" info 2>&1 | tail -1))"

# ---- 2. Base ---------------------------------------------------------------------------------
debian_mirror() {   # the Debian mirror of bookworm that apt already uses (one-line or deb822)
  [ -n "${CO2FI_DEBIAN_MIRROR:-}" ] && { echo "$CO2FI_DEBIAN_MIRROR"; return; }
  local f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
      /(^|\n)Suites:[^\n]*(^| )bookworm( |\n|$)/ && !/debian-security/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); print a[2]; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo http://deb.debian.org/debian
}
make_local_base() {
  local tarball=$cache/docker/debian12-minbase.tar mirror tmp
  if "${eng[@]}" image exists "$LOCAL_BASE" 2>/dev/null \
      || "${eng[@]}" image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    say "base: $LOCAL_BASE (already in $engine's storage)"
    return
  fi
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || die "no base image: debootstrap is missing (as root: apt-get install debootstrap), or pass --base IMAGE"
    [ "$(id -u)" = 0 ] || die "debootstrap needs root: run 'sudo make docker-test', or pass --base IMAGE"
    mirror=$(debian_mirror)
    mkdir -p "$cache/docker" "$cache/logs"
    tmp=$(mktemp -d "$cache/docker/debootstrap.XXXXXX")
    local log=$cache/logs/debootstrap-$(date +%Y%m%d-%H%M%S).log
    say "making the Debian 12 base: debootstrap --variant=minbase bookworm from $mirror (log: $log)"
    if ! debootstrap --variant=minbase bookworm "$tmp/root" "$mirror" >"$log" 2>&1; then
      rm -rf "$tmp"
      die "debootstrap of Debian 12 from $mirror failed (last line: $(tail -1 "$log")); set CO2FI_DEBIAN_MIRROR to a reachable mirror, or pass --base IMAGE"
    fi
    tar -C "$tmp/root" -c . > "$tmp/base.tar" || { rm -rf "$tmp"; die "could not pack $tmp/root into a tarball (disk full?)"; }
    mv "$tmp/base.tar" "$tarball"
    rm -rf "$tmp"
  fi
  say "base: importing $tarball as $LOCAL_BASE"
  mkdir -p "$cache/logs"
  "${eng[@]}" import "$tarball" "$LOCAL_BASE" >/dev/null 2>"$cache/logs/docker-import.log" \
    || die "'$engine import $tarball' failed ($(tail -1 "$cache/logs/docker-import.log")); delete $tarball to make it again"
}
if [ -z "$base" ]; then
  make_local_base
  base=$LOCAL_BASE
  arch=${arch:-$LOCAL_ARCH}
fi

# ---- 3. Build --------------------------------------------------------------------------------
build_args=(--build-arg "BASE=$base")
[ -n "$arch" ] && build_args+=(--build-arg "CUDA_ARCH=$arch")
[ -n "$jobs" ] && build_args+=(--build-arg "JOBS=$jobs")
# Where HTTPS goes through a proxy with its own CA, pip in the build needs the host's bundle.
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  [ -s "$ca" ] && { build_opts+=(--secret "id=ca-bundle,src=$ca"); break; }
done
[ "$engine" = docker ] && export DOCKER_BUILDKIT=1
mkdir -p "$cache/logs"
blog=$cache/logs/docker-build-$(date +%Y%m%d-%H%M%S).log
say "building $tag with $engine (base $base, CUDA_ARCH ${arch:-as in the Dockerfile}); log: $blog"
t0=$(date +%s)
if ! "${eng[@]}" build --network host "${build_opts[@]}" "${build_args[@]}" -t "$tag" \
    -f "$repo/Dockerfile" "$repo" >"$blog" 2>&1; then
  tail -n 30 "$blog" >&2
  die "the image build failed after $(( $(date +%s) - t0 )) s (above: the end of $blog); fix what it shows and run it again (finished steps are cached)"
fi
build_s=$(( $(date +%s) - t0 ))
say "image $tag built in $build_s s"

# ---- 4. Run, as the invoking user, outputs in OUT ---------------------------------------------
uid=$(id -u) gid=$(id -g)
if [ "$uid" = 0 ] && [ -n "${SUDO_UID:-}" ]; then uid=$SUDO_UID gid=${SUDO_GID:-$SUDO_UID}; fi
mkdir -p "$out" || die "cannot create the output folder $out"
out=$(cd "$out" && pwd)
[ "$(id -u)" = 0 ] && chown "$uid:$gid" "$out"
say "running pycaffe's tests and a tiny demo in $tag as $uid:$gid; outputs in $out"
t0=$(date +%s)
rc=0
"${eng[@]}" run --rm --network none "${run_opts[@]}" --user "$uid:$gid" -e HOME=/tmp \
  -v "$out:/out" "$tag" tools/docker/check_image.sh /out || rc=$?
[ "$rc" = 0 ] || die "the checks in the image failed (exit $rc): see $out/summary.txt and the logs beside it"
bad=$(find "$out" \( ! -uid "$uid" -o ! -gid "$gid" \) -print -quit)
[ -z "$bad" ] || die "$bad in $out is not owned by $uid:$gid"
say "passed in $(( $(date +%s) - t_start )) s (build $build_s s, checks $(( $(date +%s) - t0 )) s): $out/summary.txt; all files there owned by $uid:$gid"
