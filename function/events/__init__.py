"""Event triggers: a Pub/Sub message, or a file dropped under the input prefix, becomes audio.

Parse, then run: ``parse`` reads the event into a ``Task`` (one parser per event type), ``run``
does it (the pipeline, then a manifest beside the audio), inside the same frame as an HTTP request.
A job's part (a message the function published itself: ``function.jobs``) runs as a part instead,
and a text too long for one event becomes a job (``function.events.run``).

Pub/Sub and Eventarc deliver at least once, so the work is idempotent rather than exactly-once:
the audio and its manifest are write-once objects, and a delivery that finds its event's manifest
already written acknowledges without doing anything. Bad input (a permanent error) is recorded
in a "failed" manifest and acknowledged; storage or model trouble (or a bug) raises, so the
platform redelivers with backoff, until the poison-message limits (``past_limits``: the delivery
attempt, the event's age) turn the failure into a "failed" manifest and an acknowledgement.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import flask

from function import frame, jobs
from function.config import Settings
from function.events.outcome import Outcome
from function.events.parse import PUBSUB_PUBLISHED, Ignored, read_task
from function.events.run import give_up, give_up_part, run
from function.events.task import Source, Task, job_manifest
from function.logs import trace_context
from function.registry import Engines
from function.storage import ObjectStore

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

log = logging.getLogger("function.event")


def handle(
    event: CloudEvent, store: ObjectStore, engines: Engines, settings: Settings, attempt: int | None = None
) -> Outcome:
    """Serve one event. Returning acknowledges it; raising makes the platform redeliver it.
    ``attempt``: Pub/Sub's delivery attempt, when known (else read from the request being served)."""
    source = Source.of(event)
    part = jobs.PartMessage.of(event.data) if source.type == PUBSUB_PUBLISHED else None
    read: list[Task] = []  # the task, once read: where a given-up event's manifest goes

    def work() -> Outcome:
        if part is not None:
            return Outcome.part(source, jobs.run_part(part, store, engines, settings))
        try:
            task = read_task(event, source, store, settings)
        except Ignored as why:
            return Outcome.ignored(source, why)
        read.append(task)
        return run(task, store, engines, settings)

    def failed(failure: frame.Failure) -> Outcome:
        why = past_limits(event, delivery_attempt(event) if attempt is None else attempt, settings)
        if why is not None:
            task = read[0] if read else Task(source, job_manifest(None, source))
            try:
                if part is not None:
                    return give_up_part(part, source, store, settings, failure, why)
                return give_up(task, store, failure, why)
            except Exception:  # storage refuses the manifest too: retry, as without the limits
                log.warning("cannot record a given-up event", exc_info=True)
        return Outcome.retried(source, failure)

    trace = trace_context({"traceparent": event.get("traceparent")}, settings.gcp_project)
    outcome = frame.run(log, trace, source.id, work, failed)
    if outcome.retry is not None:
        # Storage or model trouble, or a bug: redelivery with backoff, then the dead-letter topic.
        raise outcome.retry.cause
    return outcome


def delivery_attempt(event: CloudEvent) -> int | None:
    """Pub/Sub's ``deliveryAttempt`` (set when the subscription has a dead-letter policy): in the
    push body, which functions-framework drops when it converts one, or in the event's data."""
    bodies: list[Any] = [event.data]
    if flask.has_request_context():
        with contextlib.suppress(Exception):
            bodies.append(flask.request.get_json(silent=True))
    for body in bodies:
        value = body.get("deliveryAttempt") if isinstance(body, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def past_limits(event: CloudEvent, attempt: int | None, settings: Settings) -> str | None:
    """Why a failing event should be given up rather than retried, or None."""
    if attempt is not None and attempt >= settings.max_delivery_attempts:
        return f"delivery attempt {attempt} of at most {settings.max_delivery_attempts}"
    try:
        sent = dt.datetime.fromisoformat(str(event.get("time")))
        age_s = (dt.datetime.now(dt.UTC) - sent).total_seconds()
    except (TypeError, ValueError):  # no time, or no timezone
        return None
    if age_s > settings.max_event_age_s:
        return f"the event is {age_s:.0f} s old, more than {settings.max_event_age_s} s"
    return None
