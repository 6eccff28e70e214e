#!/usr/bin/env bash
# Build the production Dockerfile, unchanged, with Debian's podman/buildah, on a machine that
# reaches package registries (PyPI, npm, Debian) but no registry of container images.
#
#   tests/image/build.sh [ENGINES [podman build options...]]   # prints the image's name last
#
# The base comes from base.sh (made once per machine). The build is `--pull=never` (that base is
# the only one) and `--format docker` (OCI drops SHELL, so the Dockerfile's pipefail on its
# hash-checked pipes would be silently lost, and HEALTHCHECK). It holds /tmp/bench.lock so it does
# not skew anyone's timings, and is bounded (IMAGE_BUILD_TIMEOUT_S).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/image/base.sh
. tests/image/base.sh

ENGINES=${1:-hibari,kokoro}
shift || true
image=localhost/serverless-tts:${ENGINES//,/-}
log=$STATE/build-${ENGINES//,/-}.log
limit=${IMAGE_BUILD_TIMEOUT_S:-1200}
exec 9>/tmp/bench.lock
timeout "$limit" flock 9
start=$(date +%s) # after the lock: the build's own time, not the wait
echo "image: podman build $image (ENGINES=$ENGINES)" >&2
timeout "$limit" podman build --format docker --pull=never \
  --build-arg "ENGINES=$ENGINES" "$@" -t "$image" . >"$log" 2>&1 || {
  tail -40 "$log" >&2
  exit 1
}
exec 9>&-
echo "built $image in $(($(date +%s) - start)) s" >&2
echo "$image"
