#!/usr/bin/env bash
# Build the production Dockerfile, unchanged, with Debian's podman/buildah, on a machine that reaches
# package registries (PyPI, npm, Debian) but no registry of container images.
#
#   tests/image/build.sh [ENGINES]     # prints the image's name on its last line
#
# 1. A podman configuration for this machine, in build/image/containers.conf (CONTAINERS_CONF):
#    runc (crun refuses a hybrid cgroup v1/v2 layout), cgroupfs (no systemd here), and ulimits a
#    container may set (podman's defaults fail with `setrlimit ... Operation not permitted`).
# 2. The Dockerfile's base, `python:<tag>`, made once per machine and kept in podman's store:
#    `debootstrap --variant=minbase` of the Debian release named in the tag, from the mirror apt
#    already uses, plus Debian's python3 and the host's CA bundle (RUN steps fetch from PyPI and
#    npm through this machine's trust store). A STAND-IN: Debian's Python 3.11, not python.org's;
#    the image it makes is a test artifact, never pushed.
# 3. The project image, `--pull=never` (the base above is the only one), `--format docker` (OCI
#    drops SHELL, so the Dockerfile's pipefail would be silently lost, and HEALTHCHECK).
# Every step is bounded; the builds hold /tmp/bench.lock so they do not skew anyone's timings.
set -euo pipefail
cd "$(dirname "$0")/../.."

ENGINES=${1:-hibari,kokoro}
STATE=build/image
BUILD_TIMEOUT_S=${IMAGE_BUILD_TIMEOUT_S:-1200}
mkdir -p "$STATE"
export CONTAINERS_CONF=$PWD/$STATE/containers.conf

for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool: apt-get install podman buildah runc debootstrap (make image-tools)" >&2
    exit 1
  }
done

cat >"$CONTAINERS_CONF.new" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$CONTAINERS_CONF.new" "$CONTAINERS_CONF"

# The one base the Dockerfile names (its tests check builder and runtime share it).
base=$(awk 'toupper($1) == "FROM" && $2 ~ /^python:/ {print $2; exit}' Dockerfile)
base=${base%%@*}                        # a digest pin names the registry's image, not this one
tag=${base#python:}                     # 3.11.14-slim-bookworm
suite=${tag##*-}                        # bookworm
recipe=$(sha256sum "$0" | cut -c1-16)   # a change to this recipe remakes the base
if [ "$(podman image inspect --format '{{index .Labels "serverless-tts.base-recipe"}}' "localhost/$base" 2>/dev/null)" != "$recipe" ]; then
  # The mirror apt uses for the release itself (indextargets reads sources.list and deb822 files).
  mirror=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages' |
    awk -v s="$suite" '$1 == s {print $2; exit}')
  [ -n "$mirror" ] || mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' | head -1)
  [ -n "$mirror" ] || { echo "no Debian mirror in apt's configuration" >&2; exit 1; }
  root=$(mktemp -d /var/tmp/tts-base.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "base: debootstrap $suite into $root" >&2
  timeout 900 flock /tmp/bench.lock debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$suite" "$root" "$mirror" >"$STATE/debootstrap.log" 2>&1 || {
    tail -20 "$STATE/debootstrap.log" >&2
    exit 1
  }
  # The host's trust store (it may carry CAs a bare Debian root lacks), for pip and npm in RUN.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/*
  bundle=/etc/ssl/certs/ca-certificates.crt
  tar -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PIP_CERT=$bundle" --change "ENV SSL_CERT_FILE=$bundle" \
    --change "ENV REQUESTS_CA_BUNDLE=$bundle" --change "ENV NODE_EXTRA_CA_CERTS=$bundle" \
    --change "LABEL serverless-tts.base-recipe=$recipe" \
    --change 'CMD ["python3"]' \
    - "localhost/$base" >/dev/null
  rm -rf "$root"
  trap - EXIT
fi

image=localhost/serverless-tts:${ENGINES//,/-}
echo "image: podman build $image (ENGINES=$ENGINES)" >&2
start=$(date +%s)
timeout "$BUILD_TIMEOUT_S" flock /tmp/bench.lock podman build --format docker --pull=never \
  --build-arg "ENGINES=$ENGINES" -t "$image" . >"$STATE/build-${ENGINES//,/-}.log" 2>&1 || {
  tail -40 "$STATE/build-${ENGINES//,/-}.log" >&2
  exit 1
}
echo "built $image in $(($(date +%s) - start)) s" >&2
echo "$image"
