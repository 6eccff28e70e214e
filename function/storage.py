"""Object storage: write-once, atomic objects on Google Cloud Storage or in a local folder.

Both stores give the same guarantee: an object is either absent or complete, and once written it
is never replaced. A writer that loses a race to create the same name gets the winner's object
back, which is what a content-addressed cache wants.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Deadlines on every GCS call, so that a dead or stalled bucket is a 503 (HTTP) or a retried
# event within seconds, not after the client library's default 120 s of retries of 60 s attempts
# (the single worker would sit behind it, health checks included). Each attempt may take
# GCS_CONNECT_TIMEOUT_S to connect and GCS_READ_TIMEOUT_S between bytes of the answer; failed
# attempts (refused, reset, 429, 5xx) are retried with backoff for GCS_RETRY_S in all. Reads are
# idempotent and uploads are guarded by if_generation_match, so every call may be retried.
# Worst case for one call: GCS_RETRY_S plus one attempt, far inside both services' timeouts.
GCS_CONNECT_TIMEOUT_S = 3.0
GCS_READ_TIMEOUT_S = 10.0
GCS_RETRY_S = 8.0
GCS_TIMEOUT = (GCS_CONNECT_TIMEOUT_S, GCS_READ_TIMEOUT_S)
# Sources GCS composes in one call (https://cloud.google.com/storage/docs/composite-objects).
GCS_COMPOSE_MAX = 32
# How long (in 10 ms polls) a local writer that lost a race waits for the winner's metadata before
# taking the bytes for a dead writer's orphan: long enough for a live winner on a loaded machine.
META_WAIT_TRIES = 500


# Where a local store keeps each object's metadata; no object may be named into it.
META_DIR = ".meta"
# Where a local store moves bytes whose writer died before linking their metadata.
ORPHANS = ".orphans"
# How often a local writer moves an orphan aside and tries again before giving up (a retry).
ORPHAN_RETRIES = 3


class StorageError(RuntimeError):
    """Storage is unavailable or refused us; nothing was half-written. Worth retrying later."""


@dataclass(frozen=True)
class StoredObject:
    name: str  # relative to the store's root
    uri: str
    content_type: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    # Changes whenever the bytes do (GCS's generation; a local file's inode, mtime and size), so
    # what was read from one generation may be kept for it. "": the store could not say.
    generation: str = ""


class ObjectStore(ABC):
    @abstractmethod
    def uri(self, name: str) -> str: ...

    @abstractmethod
    def stat(self, name: str) -> StoredObject | None:
        """The object, or None when it does not exist."""

    @abstractmethod
    def create(
        self, name: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> tuple[StoredObject, bool]:
        """Write ``name`` if absent. Returns the stored object and whether this call created it."""

    @abstractmethod
    def read(self, name: str) -> bytes: ...

    @abstractmethod
    def names(self, prefix: str) -> list[str]:
        """The names of the objects present under ``prefix`` (strongly consistent: an object whose
        create() returned is listed)."""

    @abstractmethod
    def compose(
        self, name: str, sources: list[str], content_type: str, metadata: dict[str, str], scratch: str = ""
    ) -> tuple[StoredObject, bool]:
        """Write ``name`` if absent as the bytes of ``sources`` one after another, without passing
        them through this process where the store allows (intermediate objects, if the store needs
        any, go under ``scratch``). Returns the object and whether this call created it, as create()
        does."""

    def signed_url(self, name: str, ttl_s: int) -> str | None:
        """An HTTPS URL a client can fetch, when the store and the credentials allow one."""
        return None

    def holds(self, uri: str) -> bool:
        """True when ``uri`` names an object inside this store (under its folder, or bucket and prefix)."""
        root = self.uri("")
        return uri.startswith(root if root.endswith("/") else f"{root}/")


class LocalStore(ObjectStore):
    """A folder. Metadata sits in ``.meta/<name>.json``, linked by the writer that won the object;
    an object counts as present once both are in place (bytes alone are a dead writer's orphan)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        path = self._file(name)
        if path.is_relative_to(self.root / META_DIR) or path.is_relative_to(self.root / ORPHANS):
            raise ValueError(f"object names under {META_DIR}/ and {ORPHANS}/ are the store's own: {name!r}")
        return path

    def _file(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"object name escapes the store: {name!r}")
        return path

    def _meta_path(self, name: str) -> Path:
        return self._file(f"{META_DIR}/{name}.json")

    def uri(self, name: str) -> str:
        return self._path(name).as_uri()

    def stat(self, name: str) -> StoredObject | None:
        path = self._path(name)
        try:
            found = path.stat()
            meta = json.loads(self._meta_path(name).read_text("utf-8"))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot look up {path}: {exc}") from exc
        generation = f"{found.st_ino}-{found.st_mtime_ns}-{found.st_size}"
        return StoredObject(
            name, self.uri(name), meta["content_type"], found.st_size, meta["metadata"], generation
        )

    def create(
        self, name: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> tuple[StoredObject, bool]:
        return self._write(name, lambda: data, content_type, metadata)

    def _write(
        self,
        name: str,
        data: Callable[[], bytes | Iterable[bytes]],
        content_type: str,
        metadata: dict[str, str],
    ) -> tuple[StoredObject, bool]:
        """Link the object, then its metadata; a writer that lost the race to create the object
        waits for the winner's metadata. Bytes whose metadata never comes belong to a writer that
        died between its two links: they are moved aside (``ORPHANS``), never adopted (another
        writer's metadata would describe them), and this writer's bytes take the name."""
        path = self._path(name)
        for _ in range(ORPHAN_RETRIES):
            try:
                created = _link_new(path, data())
            except OSError as exc:
                raise StorageError(f"cannot write {path}: {exc}") from exc
            settled = self._settle(name, created, content_type, metadata)
            if settled is not None:
                return settled
            self._quarantine(name)
        raise StorageError(f"cannot write {path}: its metadata keeps going missing")

    def _settle(
        self, name: str, created: bool, content_type: str, metadata: dict[str, str]
    ) -> tuple[StoredObject, bool] | None:
        """Link the metadata of an object this writer created, or wait for the winner's: the
        object and whether this writer's stands. None when the winner's metadata never comes."""
        meta = json.dumps({"content_type": content_type, "metadata": metadata}).encode()
        try:
            # A writer that stalled past META_WAIT_TRIES may find its object moved aside as an
            # orphan and another's metadata in place: then it lost, like any loser.
            won = created and _link_new(self._meta_path(name), meta)
            stored = self._stat_settled(name)
        except OSError as exc:
            raise StorageError(f"cannot write {self._path(name)}: {exc}") from exc
        return None if stored is None else (stored, won)

    def _quarantine(self, name: str) -> None:
        """Move an orphan (bytes without metadata) under ``ORPHANS``, where no object name reaches."""
        target = self._file(f"{ORPHANS}/{time.time_ns()}/{name}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self._path(name), target)
            log.warning("moved aside %s: its writer died before its metadata was written", self.uri(name))
        except FileNotFoundError:  # another writer moved it first
            pass
        except OSError as exc:
            raise StorageError(f"cannot move aside {self._path(name)}: {exc}") from exc

    def _stat_settled(self, name: str) -> StoredObject | None:
        """stat() that gives a winning writer a moment to link the metadata after the object."""
        for _ in range(META_WAIT_TRIES):
            if (stored := self.stat(name)) is not None:
                return stored
            time.sleep(0.01)
        return None

    def read(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {name}: {exc}") from exc

    def names(self, prefix: str) -> list[str]:
        # An object counts once its metadata is linked (as in stat), so list the metadata.
        meta_root = self.root / META_DIR
        base = self._file(f"{META_DIR}/{prefix}")
        folder = base if prefix.endswith("/") else base.parent
        if not folder.is_dir():
            return []
        found = (str(path.relative_to(meta_root))[: -len(".json")] for path in folder.rglob("*.json"))
        return sorted(name for name in found if name.startswith(prefix))

    def compose(
        self, name: str, sources: list[str], content_type: str, metadata: dict[str, str], scratch: str = ""
    ) -> tuple[StoredObject, bool]:
        def chunks() -> Iterator[bytes]:
            for source in sources:
                yield self.read(source)

        if (existing := self.stat(name)) is not None:  # as on GCS: no copy for a known loser
            return existing, False
        return self._write(name, chunks, content_type, metadata)


def _link_new(path: Path, data: bytes | Iterable[bytes]) -> bool:
    """Write a temp file, then hard-link it to ``path``: the link fails if ``path`` exists, so
    the name is never overwritten and never visible half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, bytes) else data:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the audio from other local users
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


class GcsStore(ObjectStore):
    """A bucket and prefix on Google Cloud Storage (or the emulator named by STORAGE_EMULATOR_HOST)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket_name = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import storage

            self._client = storage.Client()
        return self._client

    def _blob(self, name: str) -> Any:
        return self.client.bucket(self.bucket_name).blob(self.prefix + name)

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}{name}"

    def _stored(self, name: str, blob: Any) -> StoredObject:
        return StoredObject(
            name,
            self.uri(name),
            blob.content_type or "",
            blob.size or 0,
            dict(blob.metadata or {}),
            str(blob.generation or ""),
        )

    def stat(self, name: str) -> StoredObject | None:
        from google.api_core import exceptions

        try:
            blob = self.client.bucket(self.bucket_name).get_blob(
                self.prefix + name, timeout=GCS_TIMEOUT, retry=_retry()
            )
        except exceptions.GoogleAPIError as exc:
            raise StorageError(f"cannot look up {self.uri(name)}: {exc}") from exc
        return None if blob is None else self._stored(name, blob)

    def create(
        self, name: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> tuple[StoredObject, bool]:
        from google.api_core import exceptions

        blob = self._blob(name)
        blob.metadata = metadata
        try:
            # Generation 0 means "only if absent": GCS refuses the write with 412 when the object
            # exists, so a concurrent writer can never replace it.
            blob.upload_from_string(
                data, content_type=content_type, if_generation_match=0, timeout=GCS_TIMEOUT, retry=_retry()
            )
        except exceptions.PreconditionFailed:
            existing = self.stat(name)
            if existing is None:  # deleted between the 412 and the look-up
                raise StorageError(f"{self.uri(name)} vanished after a lost write race") from None
            return existing, False
        except exceptions.GoogleAPIError as exc:
            raise StorageError(f"cannot write {self.uri(name)}: {exc}") from exc
        return self._stored(name, blob), True

    def read(self, name: str) -> bytes:
        from google.api_core import exceptions

        try:
            return self._blob(name).download_as_bytes(timeout=GCS_TIMEOUT, retry=_retry())
        except exceptions.GoogleAPIError as exc:
            raise StorageError(f"cannot read {self.uri(name)}: {exc}") from exc

    def names(self, prefix: str) -> list[str]:
        from google.api_core import exceptions

        try:
            blobs = self.client.list_blobs(
                self.bucket_name, prefix=self.prefix + prefix, timeout=GCS_TIMEOUT, retry=_retry()
            )
            return sorted(blob.name[len(self.prefix) :] for blob in blobs)
        except exceptions.GoogleAPIError as exc:
            raise StorageError(f"cannot list {self.uri(prefix)}: {exc}") from exc

    def compose(
        self, name: str, sources: list[str], content_type: str, metadata: dict[str, str], scratch: str = ""
    ) -> tuple[StoredObject, bool]:
        """GCS composes at most ``GCS_COMPOSE_MAX`` sources a call: more are composed in a tree of
        intermediate objects (``<scratch><level>-<n>``), each write-once and left for the bucket's
        lifecycle rule (the runtime identity may not delete objects)."""
        level = 0
        while len(sources) > GCS_COMPOSE_MAX:
            groups = [sources[i : i + GCS_COMPOSE_MAX] for i in range(0, len(sources), GCS_COMPOSE_MAX)]
            sources = [f"{scratch}{level}-{n}" for n in range(len(groups))]
            for group, step in zip(groups, sources, strict=True):
                self._compose_once(step, group, "application/octet-stream", {})
            level += 1
        return self._compose_once(name, sources, content_type, metadata)

    def _compose_once(
        self, name: str, sources: list[str], content_type: str, metadata: dict[str, str]
    ) -> tuple[StoredObject, bool]:
        from google.api_core import exceptions

        existing = self.stat(name)
        if existing is not None:  # a finished job's redelivered part: not even an attempt
            return existing, False
        blob = self._blob(name)
        blob.content_type = content_type
        blob.metadata = metadata
        try:
            # Generation 0: only if absent, as in create(); this closes the race the stat leaves.
            blob.compose(
                [self._blob(source) for source in sources],
                if_generation_match=0,
                timeout=GCS_TIMEOUT,
                retry=_retry(),
            )
        except exceptions.PreconditionFailed:
            existing = self.stat(name)
            if existing is None:
                raise StorageError(f"{self.uri(name)} vanished after a lost write race") from None
            return existing, False
        except exceptions.GoogleAPIError as exc:
            raise StorageError(f"cannot compose {self.uri(name)}: {exc}") from exc
        return self._stored(name, blob), True

    def signed_url(self, name: str, ttl_s: int) -> str | None:
        """A V4 signed GET URL. Keys in hand sign locally; on Cloud Run the metadata-server
        credentials sign through the IAM signBlob API (needs Token Creator on the service account
        itself). Anonymous credentials (the emulator) cannot sign: None."""
        from google.auth import credentials as auth_credentials
        from google.auth.transport.requests import Request

        creds = self.client._credentials
        if isinstance(creds, auth_credentials.AnonymousCredentials):
            return None
        options: dict[str, Any] = {}
        try:
            if not isinstance(creds, auth_credentials.Signing):
                if not creds.valid:
                    creds.refresh(Request())
                options = {"service_account_email": creds.service_account_email, "access_token": creds.token}
            return self._blob(name).generate_signed_url(
                version="v4", expiration=dt.timedelta(seconds=ttl_s), method="GET", **options
            )
        except Exception as exc:  # signing is a convenience: the object is written either way
            log.warning("cannot sign a URL for %s: %s", self.uri(name), exc)
            return None


def _retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(GCS_RETRY_S)


def open_store(uri: str) -> ObjectStore:
    """``gs://bucket/prefix``, ``file:///path`` or a plain path (relative to the working directory)."""
    if uri.startswith("gs://"):
        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r}")
        return GcsStore(bucket, prefix)
    return LocalStore(Path(uri.removeprefix("file://")))
