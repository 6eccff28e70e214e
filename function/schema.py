"""Request schemas. Structural checks live here; checks that need the engine (voices, speeds) and
the deployment's limits live in ``function.pipeline``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from function.errors import ApiError, bad_field


class Body(BaseModel):
    """A request body: its strings must be encodable text (JSON's "\\ud800" escapes decode to a
    lone surrogate, which no encoder, hash or object name accepts)."""

    @field_validator("*")
    @classmethod
    def _no_lone_surrogates(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("contains a lone surrogate (an invalid \\u escape), not text") from None
        return value


MarkKind = Literal["sentence", "word"]
SubtitleFormat = Literal["vtt", "srt"]


class SynthesizeRequest(Body):
    """POST /synthesize, and the data of a Pub/Sub synthesis message."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # The text to speak; or SSML, in ``ssml`` or here with ``text_type`` "ssml" (Polly's name).
    # Required unless ``ssml`` is given (``_text_optional_with_ssml``).
    text: str
    # Kept as sent: SSML offsets (speech marks) count from the caller's first character.
    ssml: Annotated[str, StringConstraints(strip_whitespace=False)] | None = None
    text_type: Literal["text", "ssml"] = "text"
    # Pronunciation lexicons by name, or by gs:// URI in the input bucket (function.lexicons);
    # absent: the deployment's TTS_LEXICONS. A URI: "gs://" + bucket (63) + "/" + name (1024).
    lexicons: list[Annotated[str, StringConstraints(min_length=1, max_length=1100)]] | None = Field(
        default=None, max_length=16
    )
    # Absent or null: the default voice. "" is not a voice name.
    voice: str | None = Field(default=None, min_length=1)
    # A number, strictly: JSON true and "1.5" are not speeds (integers are); NaN and infinities neither.
    speed: float = Field(default=1.0, strict=True, allow_inf_nan=False)
    format: str = "wav"
    language: str | None = Field(default=None, min_length=1)
    # Speech marks (function.marks): when each sentence / word is said, stored beside the audio.
    marks: list[MarkKind] | None = Field(default=None, min_length=1, max_length=2)
    # Subtitles made from the sentence marks (function.subtitles), stored beside the audio.
    subtitles: SubtitleFormat | None = None

    @model_validator(mode="before")
    @classmethod
    def _text_optional_with_ssml(cls, data: Any) -> Any:
        if isinstance(data, dict) and "ssml" in data and "text" not in data:
            return {**data, "text": ""}
        return data

    def markup(self) -> tuple[str, str] | None:
        """The SSML and the field it came in (``ssml``, or ``text`` with ``text_type`` "ssml"),
        None for plain text; a 400 when the request sends both or neither."""
        if self.ssml is not None:
            if self.text or self.text_type == "ssml":
                raise bad_field("ssml", 'send the SSML in ssml, or in text with text_type "ssml", not both')
            return self.ssml, "ssml"
        return (self.text, "text") if self.text_type == "ssml" else None

    def markup_field(self) -> str | None:
        """The field the SSML came in (``markup``), None for plain text."""
        markup = self.markup()
        return None if markup is None else markup[1]


# How a streamed response carries the audio: the bytes themselves (chunked), or OpenAI's
# server-sent events (speech.audio.delta with base64 audio, then speech.audio.done).
StreamFormat = Literal["audio", "sse"]


class SpeakRequest(SynthesizeRequest):
    """POST /synthesize: a synthesis request, and whether to stream the audio as it is spoken."""

    stream: bool = Field(default=False, strict=True)
    # Used when "stream" is true.
    stream_format: StreamFormat = "audio"


class EventRequest(SynthesizeRequest):
    """A Pub/Sub message: a synthesis request plus where to put the result."""

    output: str | None = Field(default=None, description="object name, relative to the output prefix")
    job_id: str | None = None


class OpenAISpeechRequest(Body):
    """POST /v1/audio/speech, as OpenAI defines it: always streamed, as raw audio or ("sse") as
    server-sent events. Unknown fields are ignored, as OpenAI adds optional ones (e.g.
    "instructions") that a TTS model may not support."""

    model_config = ConfigDict(extra="ignore")

    model: str
    input: str
    voice: str
    response_format: str = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0, strict=True, allow_inf_nan=False)
    stream_format: StreamFormat = "audio"


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: object) -> M:
    """Validate ``data`` or raise a 400 that names the first offending field."""
    if not isinstance(data, dict):
        raise bad_field("body", "must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, "invalid_field", first["msg"], field=field) from None
