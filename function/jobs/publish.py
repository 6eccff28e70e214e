"""Publishing a job's parts (one message each) and its results notification.

In production both go to Pub/Sub topics through its REST API: the parts topic's push subscription
delivers each part to the event service, so the platform runs as many instances as
``max_instances`` allows. Locally (``TTS_JOBS_PUSH_URLS``) a push loop in this process does what
that subscription does: it POSTs each part, as Pub/Sub's push body, to a list of event instances,
one part at a time per instance, and redelivers on a failure with backoff and a growing
``deliveryAttempt``, so the parts run on the event target exactly as Pub/Sub delivers them.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from function.config import Settings
from function.errors import ApiError

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

# Pub/Sub's publish limits per request: 1000 messages, 10 MB (https://cloud.google.com/pubsub/quotas).
MAX_BATCH_MESSAGES = 1000
MAX_BATCH_BYTES = 9 * 1024 * 1024
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
PUBLISH_TIMEOUT_S = 30
# The local push loop: where it says the message came from, and its backoff (as a subscription's
# retry policy, shortened: 0.5 s doubling up to 10 s).
LOCAL_TOPIC = "projects/local/topics/tts-job-parts"
LOCAL_SUBSCRIPTION = "projects/local/subscriptions/tts-job-parts-push"
PUSH_TIMEOUT_S = 900
BACKOFF_S = (0.5, 10.0)


@dataclass(frozen=True)
class Message:
    data: dict[str, Any]
    attributes: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> dict[str, Any]:
        """As Pub/Sub's REST API and push body carry it."""
        raw = json.dumps(self.data, ensure_ascii=False).encode()
        return {"data": base64.b64encode(raw).decode(), "attributes": self.attributes}


class Publisher(Protocol):
    def parts(self, messages: list[Message]) -> None:
        """Publish every part or raise a 503 ``ApiError`` (a retry)."""

    def result(self, message: Message) -> None:
        """Publish the results notification, or raise a 503 ``ApiError``."""


def accepts_jobs(settings: Settings) -> bool:
    """Whether this deployment can publish parts (otherwise a long text is refused as before)."""
    return bool(settings.jobs_push_urls or settings.jobs_parts_topic)


def publisher(settings: Settings) -> Publisher | None:
    """The configured publisher; None when neither parts nor notifications go anywhere."""
    if settings.jobs_push_urls or settings.jobs_results_url:
        return _local_push(settings.jobs_push_urls, settings.jobs_results_url)
    if settings.jobs_parts_topic:
        return PubSubPublisher(
            settings.jobs_parts_topic, settings.jobs_results_topic, settings.pubsub_endpoint
        )
    return None


class PubSubPublisher:
    """Pub/Sub's REST API (``topics.publish``) through google-auth, which google-cloud-storage
    already brings: no gRPC stack to install or import for a few calls per job."""

    def __init__(self, parts_topic: str, results_topic: str | None, endpoint: str) -> None:
        self.parts_topic = parts_topic
        self.results_topic = results_topic
        self.endpoint = endpoint.rstrip("/")
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests  # imported by the first job, not at the instance's start

            if self.endpoint == Settings.model_fields["pubsub_endpoint"].default:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials, _ = google.auth.default(scopes=[PUBSUB_SCOPE])
                self._session = AuthorizedSession(credentials)
            else:  # an emulator: no credentials
                self._session = requests.Session()
        return self._session

    def parts(self, messages: list[Message]) -> None:
        for batch in _batches([m.encoded() for m in messages]):
            self._publish(self.parts_topic, batch)

    def result(self, message: Message) -> None:
        if self.results_topic:
            self._publish(self.results_topic, [message.encoded()])

    def _publish(self, topic: str, messages: list[dict[str, Any]]) -> None:
        import requests

        url = f"{self.endpoint}/v1/{topic}:publish"
        try:
            response = self.session.post(url, json={"messages": messages}, timeout=PUBLISH_TIMEOUT_S)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise unavailable(f"cannot publish to {topic}: {exc}") from exc


def _batches(encoded: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for message in encoded:
        length = len(message["data"]) + 200
        if batches[-1] and (len(batches[-1]) == MAX_BATCH_MESSAGES or size + length > MAX_BATCH_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(message)
        size += length
    return batches


def unavailable(message: str) -> ApiError:
    return ApiError(503, "publish_unavailable", message, headers={"Retry-After": "10"})


class LocalPush:
    """A push subscription in miniature: one delivery thread per event instance."""

    def __init__(self, urls: tuple[str, ...], results_url: str | None) -> None:
        self.urls = urls
        self.results_url = results_url
        self.pending: queue.Queue[tuple[dict[str, Any], int]] = queue.Queue()
        self._ids = itertools.count(int(time.time() * 1000) * 1000)
        for url in urls:
            threading.Thread(target=self._deliver_to, args=(url,), daemon=True).start()

    def parts(self, messages: list[Message]) -> None:
        if not self.urls:
            raise unavailable("no event instances to push parts to (TTS_JOBS_PUSH_URLS)")
        for message in messages:
            self.pending.put((self._stamped(message), 1))

    def result(self, message: Message) -> None:
        if self.results_url is None:
            log.info("no results URL: notification not sent", extra={"job": message.data})
            return
        if not _push(self.results_url, self._stamped(message), 1):
            raise unavailable(f"cannot notify {self.results_url}")

    def _stamped(self, message: Message) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {**message.encoded(), "messageId": str(next(self._ids)), "publishTime": now}

    def _deliver_to(self, url: str) -> None:
        while True:
            message, attempt = self.pending.get()
            if not _push(url, message, attempt):
                delay = min(BACKOFF_S[0] * 2 ** (attempt - 1), BACKOFF_S[1])
                _later(delay, lambda m=message, a=attempt: self.pending.put((m, a + 1)))


def _push(url: str, message: dict[str, Any], attempt: int) -> bool:
    """POST one push body; True when the receiver acknowledged it (2xx)."""
    import requests

    body = {"message": message, "subscription": LOCAL_SUBSCRIPTION, "deliveryAttempt": attempt}
    try:
        # The path names the topic, as a push endpoint may: functions-framework reads it from there.
        response = requests.post(f"{url}/{LOCAL_TOPIC}", json=body, timeout=PUSH_TIMEOUT_S)
    except requests.RequestException as exc:
        log.warning("push to %s failed: %s", url, exc)
        return False
    return 200 <= response.status_code < 300


def _later(delay_s: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(delay_s, action)
    timer.daemon = True
    timer.start()


@lru_cache(maxsize=4)
def _local_push(urls: tuple[str, ...], results_url: str | None) -> LocalPush:
    return LocalPush(urls, results_url)  # one push loop per process
