"""Publishing a job's parts once across instances: a create-if-absent claim before publishing.

Two instances given the same document at the same instant (a client's retry landing beside its
first attempt) used to both find no ``published`` marker and both publish every part (issue 24).
Now each publisher first creates ``jobs/<id>/publishing/<n>`` write-once; the one whose create
wins publishes, the others wait for its ``published`` marker. A claim is not forever: one whose
publisher failed (``<n>.failed``) or passed its deadline (it died) is followed by claim ``n + 1``,
so a job is never left unpublished; at worst a publisher that stalled past its deadline and a
successor both publish, which the parts tolerate (at least once, as Pub/Sub delivers).
"""

from __future__ import annotations

import time

from function.errors import ApiError
from function.jobs.layout import job_dir, published_marker
from function.jobs.publish import MAX_BATCH_MESSAGES, PUBLISH_TIMEOUT_S, Message, Publisher
from function.storage import ObjectStore

# Beyond the publisher's own timeouts, how long a claim holds before it counts as abandoned.
CLAIM_MARGIN_S = 30.0
# How often an instance that lost the claim looks for the winner's marker.
POLL_S = 0.2
FAILED = ".failed"


def claims_prefix(job_id: str) -> str:
    return f"{job_dir(job_id)}publishing/"


def publish_once(store: ObjectStore, job_id: str, publisher: Publisher, messages: list[Message]) -> bool:
    """Publish ``messages`` unless this job's parts are (being) published by another instance;
    True when this call published them. Raises the publisher's 503 (the claim is marked failed, so
    a retry claims again at once)."""
    marker = published_marker(job_id)
    while store.stat(marker) is None:
        number, held = _latest(store, job_id)
        if held:
            time.sleep(POLL_S)
            continue
        batches = 1 + len(messages) // MAX_BATCH_MESSAGES
        until = time.time() + batches * PUBLISH_TIMEOUT_S + CLAIM_MARGIN_S
        claim = f"{claims_prefix(job_id)}{number + 1:06d}"
        _, won = store.create(claim, b"", "text/plain", {"job_id": job_id, "until": f"{until:.3f}"})
        if not won:
            continue
        try:
            publisher.parts(messages)
        except ApiError:
            store.create(f"{claim}{FAILED}", b"", "text/plain", {"job_id": job_id})
            raise
        store.create(marker, b"", "text/plain", {"job_id": job_id})
        return True
    return False


def _latest(store: ObjectStore, job_id: str) -> tuple[int, bool]:
    """The number of the job's latest claim (0: none), and whether it still holds."""
    prefix = claims_prefix(job_id)
    names = set(store.names(prefix))
    numbers = [int(name[len(prefix) :]) for name in names if name[len(prefix) :].isdigit()]
    if not numbers:
        return 0, False
    latest = max(numbers)
    claim = f"{prefix}{latest:06d}"
    if f"{claim}{FAILED}" in names:
        return latest, False
    stored = store.stat(claim)
    return latest, stored is not None and time.time() < float(stored.metadata.get("until", "0"))
