#!/usr/bin/env bash
# The podman configuration for this machine and the stand-in for the Dockerfile's base image, made
# once per machine (kept in podman's store, remade only when this recipe changes). Sourced by
# build.sh; the tests read the same configuration (loadtest/containers.py).
#
# 1. build/image/containers.conf (CONTAINERS_CONF): runc (crun refuses a hybrid cgroup v1/v2
#    layout), cgroupfs (no systemd here), and ulimits a container may set (podman's defaults fail
#    with `setrlimit ... Operation not permitted`): nofile at the host's hard limit, nproc 4096.
# 2. `python:<tag>` as the Dockerfile's FROM names it, under localhost/: no registry of container
#    images is reachable, so it is `debootstrap --variant=minbase` of the Debian release in the tag,
#    from the mirror apt already uses, with Debian's python3 and the host's CA bundle (RUN steps
#    fetch from PyPI and npm through this machine's trust store). A STAND-IN: Debian's Python
#    3.11, not python.org's, and a test artifact that is never pushed.

STATE=build/image
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

# The one base the Dockerfile names (its tests check that builder and runtime share it).
base=$(awk 'toupper($1) == "FROM" && $2 ~ /^python:/ {print $2; exit}' Dockerfile)
base=${base%%@*}                                        # a digest names the registry's image
suite=${base##*-}                                       # python:3.11.14-slim-bookworm: bookworm
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)    # a change to this recipe remakes the base
made=$(podman image inspect --format '{{index .Labels "serverless-tts.base-recipe"}}' "localhost/$base" 2>/dev/null || true)
if [ "$made" != "$recipe" ]; then
  # The mirror apt uses for the release itself (indextargets reads sources.list and deb822 files).
  mirror=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages' |
    awk -v s="$suite" '$1 == s {print $2; exit}')
  [ -n "$mirror" ] || { echo "no mirror for Debian $suite in apt's configuration" >&2; exit 1; }
  root=$(mktemp -d /var/tmp/tts-base.XXXXXX)
  echo "base: debootstrap $suite" >&2
  timeout 900 flock /tmp/bench.lock debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$suite" "$root" "$mirror" >"$STATE/debootstrap.log" 2>&1 || {
    tail -20 "$STATE/debootstrap.log" >&2
    rm -rf "$root"
    exit 1
  }
  bundle=/etc/ssl/certs/ca-certificates.crt
  cp "$bundle" "$root$bundle"
  # What Debian's slim images leave out (dpkg path-excludes), so that sizes compare with theirs.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
  tar -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PIP_CERT=$bundle" --change "ENV SSL_CERT_FILE=$bundle" \
    --change "ENV REQUESTS_CA_BUNDLE=$bundle" --change "ENV NODE_EXTRA_CA_CERTS=$bundle" \
    --change "LABEL serverless-tts.base-recipe=$recipe" \
    --change 'CMD ["python3"]' \
    - "localhost/$base" >/dev/null
  rm -rf "$root"
fi
