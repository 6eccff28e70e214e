#!/usr/bin/env bash
# Creates .venv-checkov with a pinned checkov (idempotent; `make test` runs it).
# checkov lives in its own venv: it depends on bc-python-hcl2, a fork that installs the same
# `hcl2` module as python-hcl2 (which the deploy tests use), so the two cannot share one.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${CHECKOV_VENV:-.venv-checkov}"
VERSION=3.3.30
if [ -x "$VENV/bin/checkov" ] && [ "$("$VENV/bin/checkov" --version)" = "$VERSION" ]; then
    exit 0
fi
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/pip" install -q "checkov==$VERSION"
