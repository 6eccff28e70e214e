"""Settings: every environment variable the function reads, parsed once into a typed object.

The names (TTS_ prefix) are the contract with the Dockerfile and Terraform; tests check they agree.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where the Docker image bakes model weights; TTS_MODEL_DIR defaults to it.
DEFAULT_MODEL_DIR = "/opt/models/cosyvoice-300m-sft"
HEALTH_ROUTE = "/healthz"
# fp32 is upstream parity; bf16 and int8 (the LLM only) are faster and sound slightly different.
CosyVoicePrecision = Literal["fp32", "bf16", "int8"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTS_", frozen=True, extra="ignore")

    engine: Literal["hibari", "cosyvoice"] = "hibari"
    model_dir: Path = Path(DEFAULT_MODEL_DIR)
    cosyvoice_precision: CosyVoicePrecision = "fp32"
    default_voice: str | None = None
    # OpenAI voice name -> this deployment's voice id, as JSON; empty means the engine's own table.
    voice_map: dict[str, str] = Field(default_factory=dict)

    output_uri: str = "tts-output"
    input_prefix: str = "inputs/"
    signed_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    max_chars: int = Field(default=4096, ge=1)
    max_event_chars: int = Field(default=100_000, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # The HTTP request timeout the platform enforces (Cloud Run timeout, gunicorn --timeout).
    request_timeout_s: int = Field(default=300, ge=1, le=3600)
    # The event service's timeout; must fit inside the Pub/Sub ack deadline (600 s at most).
    event_timeout_s: int = Field(default=540, ge=1, le=600)
    # Overrides the engine's own estimate of synthesis seconds per character.
    seconds_per_char: float | None = Field(default=None, gt=0)
    sentence_pause_ms: int = Field(default=200, ge=0, le=2000)

    threads: int | None = Field(default=None, ge=1)
    # Project id for Cloud Logging trace links ("projects/<id>/traces/<trace>").
    gcp_project: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("input_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        value = value.strip("/")
        return f"{value}/" if value else ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
