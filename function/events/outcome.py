"""How an event ended, as its one log line tells it (``function.frame``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from function.errors import ApiError
from function.events.task import Source
from function.frame import Failure, LogLine
from function.jobs import PartOutcome, Submitted
from function.pipeline import Result
from function.storage import StoredObject

_SEVERITY = {"failed": logging.WARNING, "retry": logging.ERROR, "gave_up": logging.ERROR}


@dataclass(frozen=True)
class Outcome:
    """``outcome`` is done, duplicate, failed (bad input, recorded and acknowledged), submitted (a
    text too long for one event, now a job), ignored (not for this function, or a job part its job
    did not plan), retry (``retry``
    holds why: the platform must redeliver) or gave_up (a failure past the poison-message limits,
    recorded and acknowledged; ``failure`` holds it)."""

    source: Source
    outcome: str
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    retry: Failure | None = None
    failure: Failure | None = None
    warn: bool = False  # a warning whatever the outcome

    @classmethod
    def done(cls, source: Source, manifest: StoredObject, result: Result) -> Outcome:
        return cls(source, "done", "event done", {"manifest": manifest.uri, **result.log_fields()})

    @classmethod
    def duplicate(cls, source: Source, manifest: StoredObject) -> Outcome:
        status = manifest.metadata.get("status")
        return cls(source, "duplicate", "event duplicate", {"manifest": manifest.uri, "status": status})

    @classmethod
    def failed(cls, source: Source, manifest: StoredObject, error: ApiError) -> Outcome:
        return cls(source, "failed", "event failed", {"manifest": manifest.uri, **error.log_fields()})

    @classmethod
    def submitted(cls, source: Source, submitted: Submitted) -> Outcome:
        """Too long for one event: it became a job, whose parts are published."""
        return cls(source, "submitted", "event became a job", submitted.log_fields())

    @classmethod
    def part(cls, source: Source, part: PartOutcome) -> Outcome:
        """A job's part: done, duplicate, failed (the job fails with it) or ignored (not a part its
        job planned: a warning, as only a forged or mistaken message gets there)."""
        if part.reason is not None:
            return cls(
                source, part.outcome, f"job part {part.outcome}: {part.reason}", part.log_fields(), warn=True
            )
        return cls(source, part.outcome, f"job part {part.outcome}", part.log_fields())

    @classmethod
    def ignored(cls, source: Source, why: Exception) -> Outcome:
        return cls(source, "ignored", f"event ignored: {why}")

    @classmethod
    def retried(cls, source: Source, failure: Failure) -> Outcome:
        # The error code (storage_unavailable, model_unavailable, internal) feeds the log-based metrics.
        fields = failure.error.log_fields()
        return cls(source, "retry", f"event will be retried: {failure.cause}", fields, retry=failure)

    @classmethod
    def gave_up(
        cls,
        source: Source,
        manifest: str | None,
        failure: Failure,
        why: str,
        more: Mapping[str, Any] | None = None,
    ) -> Outcome:
        fields = {"manifest": manifest, **failure.error.log_fields(), **(more or {})}
        return cls(source, "gave_up", f"event given up ({why}): {failure.cause}", fields, failure=failure)

    def log_line(self, latency_s: float) -> LogLine:
        source = self.source
        fields = {
            "event_id": source.id,
            "event_type": source.type,
            "subject": source.subject,
            "outcome": self.outcome,
            **self.fields,
        }
        failure = self.retry or self.failure
        traceback = failure.cause if failure is not None and failure.is_bug else None
        severity = logging.WARNING if self.warn else _SEVERITY.get(self.outcome, logging.INFO)
        return LogLine(severity, self.message, fields, traceback)
