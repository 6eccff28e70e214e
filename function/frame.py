"""The frame around every request, whichever adapter received it (HTTP: ``function.web``; events:
``function.events``): the caller's trace bound to every log line written meanwhile, a timer, one
mapping of failures onto errors a caller can act on, and one structured log line at the end.

The shape is functions-framework's own (``_configure_app``): one frame, and a small wrapper per
function type that runs the work, says what a failure becomes, and how its outcome reads in the log.
The log line's fields are a contract: metrics are derived from them (README, "Logs").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from function.engines.base import EngineLoadError
from function.errors import ApiError
from function.logs import bind_trace, fields, unbind_trace
from function.storage import StorageError

# How long a client (or the platform) should wait before retrying after model or storage trouble.
RETRY_AFTER_S = "10"


@dataclass(frozen=True)
class LogLine:
    """The one line a request ends with."""

    severity: int
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    # A bug's exception, whose stack trace goes into the line (Error Reporting reads it there).
    traceback: BaseException | None = None


class Outcome(Protocol):
    """What an adapter's work comes to, success or failure, as its log line tells it."""

    def log_line(self, latency_s: float) -> LogLine: ...


@runtime_checkable
class Ongoing(Protocol):
    """An outcome whose work goes on after ``run`` returns (a streamed response): when it does,
    ``carry_on`` keeps ``end`` and calls it once, with the final outcome, when the work is over,
    and returns True; the frame (trace, timer, log line) stays open until then."""

    def carry_on(self, end: Callable[[Outcome], None]) -> bool: ...


@dataclass(frozen=True)
class Failure:
    """An exception that ended the work, as the caller sees it: an ``ApiError`` with an honest status."""

    cause: Exception
    error: ApiError

    @property
    def is_bug(self) -> bool:
        """Neither bad input nor model or storage trouble: worth a stack trace."""
        return self.error.code == "internal"


def failure(exc: Exception, reference: str) -> Failure:
    """The one error mapping: bad input keeps its own error; model and storage trouble are a 503
    with Retry-After (nothing was half-written, a retry may succeed); anything else is a 500 that
    names ``reference`` (the request id) and hides the details, which go to the log."""
    if isinstance(exc, ApiError):
        return Failure(exc, exc)
    retry = {"Retry-After": RETRY_AFTER_S}
    if isinstance(exc, EngineLoadError):
        # The cause (often a path inside the image) goes to the log line, never to the caller.
        message = f"the model could not be loaded (request id {reference}; the cause is in the service log)"
        error = ApiError(503, "model_unavailable", message, headers=retry)
    elif isinstance(exc, StorageError):
        message = "object storage is unavailable; nothing was written"
        error = ApiError(503, "storage_unavailable", message, headers=retry)
    else:
        error = ApiError(500, "internal", f"internal error (request id {reference})")
    return Failure(exc, error)


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def run(
    logger: logging.Logger,
    trace: dict[str, str],
    reference: str,
    work: Callable[[], OutcomeT],
    failed: Callable[[Failure], OutcomeT],
) -> OutcomeT:
    """Run ``work`` in the frame; an exception becomes ``failed(failure)``. Either way the outcome
    is logged as one line (with ``latency_ms``) and returned: the adapter decides what it answers.
    An ``Ongoing`` outcome is logged when it says its work is over (a stream's last byte)."""
    token = bind_trace(trace)
    started = time.perf_counter()

    def end(outcome: Outcome) -> None:
        try:
            latency_s = time.perf_counter() - started
            line = outcome.log_line(latency_s)
            logger.log(
                line.severity,
                line.message,
                exc_info=line.traceback,
                extra=fields(**line.fields, latency_ms=round(latency_s * 1000, 1)),
            )
        finally:
            unbind_trace(token)

    try:
        try:
            outcome = work()
        except Exception as exc:
            outcome = failed(failure(exc, reference))
    except BaseException:
        unbind_trace(token)
        raise
    if not (isinstance(outcome, Ongoing) and outcome.carry_on(end)):
        end(outcome)
    return outcome
