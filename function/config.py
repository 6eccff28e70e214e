"""Settings: every environment variable the function reads, parsed once into a typed object.

The names (TTS_ prefix) are the contract with the Dockerfile and Terraform; tests check they agree.
Each field ``name`` is read from ``TTS_<NAME>`` (in any case); a mapping field is JSON, and
``engines`` a comma-separated list. Plain pydantic reads them: pydantic-settings (its sources for
dotenv files, secrets and cloud vaults, and asyncio) took longer to import than all the rest of
the settings at a cold start, for nothing this function uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from function.engines.cosyvoice.precision import Precision

# Where the Docker image bakes CosyVoice's weights; TTS_MODEL_DIR defaults to it.
DEFAULT_MODEL_DIR = "/opt/models/cosyvoice-300m-sft"
# Kokoro's model directory (voices, jieba trie; `make` and the Dockerfile build it).
DEFAULT_KOKORO_DIR = "models/kokoro-82m"
HEALTH_ROUTE = "/healthz"
EngineName = Literal["hibari", "kokoro", "cosyvoice"]
ENV_PREFIX = "TTS_"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    # The engines this deployment serves, in order of preference ("hibari,kokoro"): a request with
    # no voice goes to the first engine with a voice for its language.
    engines: tuple[EngineName, ...] = ("hibari", "kokoro")
    model_dir: Path = Path(DEFAULT_MODEL_DIR)
    cosyvoice_precision: Precision = "fp32"
    kokoro_dir: Path = Path(DEFAULT_KOKORO_DIR)
    default_voice: str | None = None
    # OpenAI voice name -> this deployment's voice id, as JSON; "alloy" for every language,
    # "zh:alloy" for one. Empty means the engines' own tables.
    voice_map: dict[str, str] = Field(default_factory=dict)

    output_uri: str = "tts-output"
    input_prefix: str = "inputs/"
    # The only bucket whose dropped files are read; default: the output bucket (gs:// output).
    input_bucket: str | None = None
    signed_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    max_chars: int = Field(default=4096, ge=1)
    max_event_chars: int = Field(default=100_000, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # SSML (function.ssml): the markup's own limit; the characters it speaks count against max_chars.
    ssml_max_bytes: int = Field(default=64 * 1024, ge=1024)
    # Pronunciation lexicons (function.lexicons): a directory of W3C PLS files (<name>.pls), and
    # the ones every request uses unless it names its own (comma-separated names).
    lexicon_dir: Path | None = None
    lexicons: tuple[str, ...] = ()
    # Lexicons may also be objects under this prefix of the input bucket, named by their gs:// URI.
    lexicon_prefix: str = "lexicons/"
    # The HTTP request timeout the platform enforces (Cloud Run timeout, gunicorn --timeout).
    request_timeout_s: int = Field(default=300, ge=1, le=3600)
    # The event service's timeout; must fit inside the Pub/Sub ack deadline (600 s at most).
    event_timeout_s: int = Field(default=540, ge=1, le=600)
    # Overrides the engine's own estimate of synthesis seconds per character.
    seconds_per_char: float | None = Field(default=None, gt=0)
    sentence_pause_ms: int = Field(default=200, ge=0, le=2000)
    # Poison-message bounds for events that keep failing (storage, model, a bug): at this Pub/Sub
    # delivery attempt (known when the subscription has a dead-letter policy), or once the event
    # is this old (its CloudEvent time), the failure is recorded in a failed manifest and the
    # event acknowledged instead of retried.
    max_delivery_attempts: int = Field(default=5, ge=1, le=100)
    max_event_age_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # API keys (function.auth): a JSON file of hashed keys (Secret Manager, mounted), and/or the same
    # JSON inline. Neither: nothing is checked. api_key_bearer: Authorization: Bearer may carry a
    # key (off when IAM's identity token takes that header: keys then come as X-API-Key only).
    api_keys_file: str = ""
    api_keys: str = ""
    api_key_bearer: bool = True
    # With keys, each key's audio is its own (no key learns what another asked for from a cache
    # hit); shared_cache: one cache for every key, as without keys (function.pipeline.scoped).
    shared_cache: bool = False

    # Jobs (function.jobs): long documents split into parts, each its own event. A part may use
    # this share of the event's synthesis budget (the rest is margin for a slower vCPU), and at most
    # job_part_chars characters (more parts, more instances at once).
    job_max_chars: int = Field(default=1_000_000, ge=1)
    job_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    job_part_chars: int = Field(default=2000, ge=100)
    # An SSML job's markup (each part is cut to fit ssml_max_bytes).
    job_ssml_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    job_part_budget: float = Field(default=0.5, gt=0, le=1)
    # Where parts and notifications go: Pub/Sub topics ("projects/<p>/topics/<t>") in production;
    # for local runs, event instances to push parts to (comma-separated URLs: a local fleet) and a
    # URL that receives the results notifications.
    jobs_parts_topic: str | None = None
    jobs_results_topic: str | None = None
    jobs_push_urls: tuple[str, ...] = ()
    jobs_results_url: str | None = None
    # Pub/Sub's REST endpoint; another one (an emulator) is called without credentials.
    pubsub_endpoint: str = "https://pubsub.googleapis.com"

    # The page to try the service (function.page: GET /), served with every other route and
    # behind the same keys; off: / and /page/* are 404s.
    page: bool = True
    # What the page prices a request at (function.page): Cloud Run's list prices for request-based
    # billing (Tier 1 regions), and one instance's size, as Terraform deploys it (cpu, memory).
    price_vcpu_second: float = Field(default=0.000024, ge=0)
    price_gib_second: float = Field(default=0.0000025, ge=0)
    price_per_request: float = Field(default=0.40 / 1_000_000, ge=0)
    instance_vcpu: float = Field(default=2, gt=0)
    instance_memory_mib: int = Field(default=3072, gt=0)

    threads: int | None = Field(default=None, ge=1)
    # Project id for Cloud Logging trace links ("projects/<id>/traces/<trace>").
    gcp_project: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def __init__(self, **values: Any) -> None:
        """The environment's settings; ``values`` given here win (``Settings(threads=1)``)."""
        super().__init__(**(from_environment(os.environ) | values))

    @field_validator("engines", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("name at least one engine")
            return tuple(dict.fromkeys(value))  # duplicates would only shadow their own voices
        return value

    @field_validator("lexicons", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("jobs_push_urls", mode="before")
    @classmethod
    def _url_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(url.strip().rstrip("/") for url in value.split(",") if url.strip())
        return value

    @model_validator(mode="after")
    def _input_bucket_defaults_to_the_output_bucket(self) -> Settings:
        if self.input_bucket is None and self.output_uri.startswith("gs://"):
            bucket = self.output_uri.removeprefix("gs://").partition("/")[0]
            object.__setattr__(self, "input_bucket", bucket or None)
        return self

    @field_validator("input_prefix", "lexicon_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        value = value.strip("/")
        return f"{value}/" if value else ""


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The raw value of each field set in ``environ``, JSON decoded for mapping fields."""
    by_name = {name.upper(): value for name, value in environ.items()}
    values: dict[str, Any] = {}
    for name, info in Settings.model_fields.items():
        raw = by_name.get(f"{ENV_PREFIX}{name}".upper())
        if raw is None:
            continue
        if get_origin(info.annotation) is dict:
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} is not JSON: {exc}") from None
        else:
            values[name] = raw
    return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
