"""Event triggers: a Pub/Sub message, or a file dropped under the input prefix, becomes audio.

Parse, then run: ``parse`` reads the event into a ``Task`` (one parser per event type), ``run``
does it (the pipeline, then a manifest beside the audio), inside the same frame as an HTTP request.

Pub/Sub and Eventarc deliver at least once, so the work is idempotent rather than exactly-once:
the audio and its manifest are write-once objects, and a delivery that finds its event's manifest
already written acknowledges without doing anything. Bad input (a permanent error) is recorded
in a "failed" manifest and acknowledged; storage or model trouble raises, so the platform
redelivers with backoff and finally dead-letters.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from function import frame
from function.config import Settings
from function.events.outcome import Outcome
from function.events.parse import Ignored, read_task
from function.events.run import run
from function.events.task import Source
from function.logs import trace_context
from function.registry import Engines
from function.storage import ObjectStore

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

log = logging.getLogger("function.event")


def handle(event: CloudEvent, store: ObjectStore, engines: Engines, settings: Settings) -> Outcome:
    """Serve one event. Returning acknowledges it; raising makes the platform redeliver it."""
    source = Source.of(event)

    def work() -> Outcome:
        try:
            task = read_task(event, source, store, settings)
        except Ignored as why:
            return Outcome.ignored(source, why)
        return run(task, store, engines, settings)

    def failed(failure: frame.Failure) -> Outcome:
        return Outcome.retried(source, failure)

    trace = trace_context({"traceparent": event.get("traceparent")}, settings.gcp_project)
    outcome = frame.run(log, trace, source.id, work, failed)
    if outcome.retry is not None:
        # Storage or model trouble, or a bug: redelivery with backoff, then the dead-letter topic.
        raise outcome.retry.cause
    return outcome
