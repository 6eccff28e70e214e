# serverless-tts: one image per engine, model baked in, one request at a time per instance.
#
#   docker build -t tts .                                   # hibari (voice ships in the wheel)
#   docker build -t tts --build-arg ENGINE=cosyvoice .      # CosyVoice-300M-SFT, converted
#
# Stages: deps (venv + source) -> build-<ENGINE> (engine deps, baked model) -> runtime (slim,
# non-root, no compilers, pip caches or download tools). A broken model fails the build: the
# last step speaks a sentence with the runtime image itself (python -m function.selftest).

ARG ENGINE=hibari

# The same pinned base in both FROMs (builder and runtime must share Python and glibc); add
# @sha256:<digest> to both for byte-identical rebuilds.
FROM python:3.11.14-slim-bookworm AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && mkdir -p /opt/models /opt/hibari
WORKDIR /app
COPY pyproject.toml README.md ./
COPY function ./function
# Bytecode compiled once here, not by every cold start (the runtime never writes it).
RUN python -m compileall -q function

FROM deps AS build-hibari
# Extra hibari voices (space-separated ids, e.g. "emma"), fetched now into HIBARI_HOME: the
# function never downloads at run time. The default voice ships inside the hibari wheel.
ARG HIBARI_VOICES=""
ENV HIBARI_HOME=/opt/hibari
# The runtime runs the source tree (functions-framework --source needs a file path), so the
# package itself is installed only to pull in its dependencies, then removed.
RUN pip install . && pip uninstall -y serverless-tts \
    && for voice in $HIBARI_VOICES; do \
         python -c 'import sys; from hibari.voices import voice_path; print(voice_path(sys.argv[1]))' "$voice"; \
       done

FROM deps AS build-cosyvoice
# A failure anywhere in a pipe (a hash check) fails the step.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG HF_HUB_VERSION=0.36.0
ARG WHISPER_VERSION=20250625
ARG WHISPER_VOCAB_SHA256=b34b360dbb493e781e479794586d661700670d65564001f23024971d1f2fa126
ARG COSYVOICE_REPO=FunAudioLLM/CosyVoice-300M-SFT
# A commit of the model repository: the weights baked are the weights reviewed. Pass the commit
# you tested (https://huggingface.co/FunAudioLLM/CosyVoice-300M-SFT/commits/main).
ARG COSYVOICE_REVISION=""
ARG MODEL_DIR=/opt/models/cosyvoice-300m-sft
# torch from PyTorch's CPU index: the default index would pull the multi-GB CUDA build.
# DL3013: ".[cosyvoice]" is this project, its dependency versions are bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION" \
    && pip install ".[cosyvoice]" && pip uninstall -y serverless-tts
# Download tools live in a throwaway venv that never reaches the runtime stage. Only the files
# the SFT path reads are fetched: campplus.onnx and speech_tokenizer_v1.onnx (zero-shot voice
# cloning) are never downloaded.
RUN test -n "$COSYVOICE_REVISION" || { echo "pass --build-arg COSYVOICE_REVISION=<commit>" >&2; exit 1; } \
    && python -m venv /opt/fetch \
    && /opt/fetch/bin/pip install "huggingface_hub==$HF_HUB_VERSION" \
    && /opt/fetch/bin/python -c 'import sys; from huggingface_hub import snapshot_download; snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2], local_dir=sys.argv[3], allow_patterns=["cosyvoice.yaml", "llm.pt", "flow.pt", "hift.pt", "spk2info.pt"])' \
       "$COSYVOICE_REPO" "$COSYVOICE_REVISION" "$MODEL_DIR" \
    && rm -rf "$MODEL_DIR/.cache"
# TOKENIZER VOCAB (keep in step with function/engines/cosyvoice/tokenizer.py VOCAB_FILE): whisper's
# multilingual.tiktoken, which the model repository does not ship, taken from the openai-whisper
# package (not installed into the runtime) and checked against the hash the engine was tested with.
RUN /opt/fetch/bin/pip install --no-deps --target /tmp/whisper "openai-whisper==$WHISPER_VERSION" \
    && cp /tmp/whisper/whisper/assets/multilingual.tiktoken "$MODEL_DIR/" \
    && echo "$WHISPER_VOCAB_SHA256  $MODEL_DIR/multilingual.tiktoken" | sha256sum -c - \
    && rm -rf /tmp/whisper /opt/fetch
# Convert to safetensors + manifest.json (memory-mapped, no pickle at load); the runtime prefers
# the converted files, so the official .pt checkpoints are dropped from the image.
RUN python -m function.engines.cosyvoice.convert "$MODEL_DIR" \
    && rm -f "$MODEL_DIR"/*.pt

# The engine's build stage, picked by the ENGINE build arg (BuildKit skips the other one).
# checkov:skip=CKV_DOCKER_7:build-${ENGINE} is a stage of this file, not a registry image
# DL3006: build-${ENGINE} is a stage of this file, not a registry image, so it has no tag.
# hadolint ignore=DL3006
FROM build-${ENGINE} AS build

FROM python:3.11.14-slim-bookworm AS runtime
ARG ENGINE
RUN groupadd --system --gid 10001 tts \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin tts
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/models /opt/models
COPY --from=build /opt/hibari /opt/hibari
COPY --from=build /app/function /app/function
WORKDIR /app
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
    TTS_ENGINE=${ENGINE} \
    TTS_MODEL_DIR=/opt/models/cosyvoice-300m-sft \
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
# Build-time proof, as the runtime user in the runtime image: load the model, speak, check the audio.
RUN python -m function.selftest
EXPOSE 8080
# Cloud Run probes the container port directly (startup probe on /healthz, see terraform/).
HEALTHCHECK NONE
# functions-framework reads FUNCTION_TARGET and PORT from the environment.
CMD ["functions-framework", "--source", "function/main.py"]
