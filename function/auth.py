"""API keys: who may call the HTTP service when the deployment has keys (README, "API keys").

A key is ``tts_<id>_<secret>``: an 8-hex-digit id (safe to log, names the key) and 256 random bits.
Only its SHA-256 is stored, with the id and an optional label, in a JSON document: a file
(``TTS_API_KEYS_FILE``; in production a Secret Manager secret that Terraform mounts) or the
variable ``TTS_API_KEYS`` itself. A fast hash is enough because the secret is random, not a
password; the digest is compared in constant time. Several keys are valid at once (rotation: add
the new one, move callers, drop the old one); the file is read again every ``RELOAD_S`` seconds,
so a new secret version takes effect without a redeploy.

A caller sends the key as ``X-API-Key`` or, unless the deployment uses IAM too (whose identity
token fills ``Authorization``), as ``Authorization: Bearer`` (what the openai SDK sends). No keys
configured: nothing is checked (IAM, or nothing, guards the service as before).

``python -m function.auth new --label NAME --file keys.json`` makes a key: it prints the key once
and appends its hash to the file; ``revoke ID`` and ``list`` manage the file.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Request

from function.errors import ApiError
from function.logs import annotate

log = logging.getLogger(__name__)

PREFIX = "tts"
KEY_RE = re.compile(rf"^{PREFIX}_(?P<id>[0-9a-f]{{8}})_[A-Za-z0-9_-]{{43}}$")
RELOAD_S = 30.0
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Compared against when the id is unknown, so a wrong id costs the same as a wrong secret.
_NO_DIGEST = hashlib.sha256(b"no such key").hexdigest()
# Where the guard leaves the caller's key id on the request (what jobs are scoped by).
CALLER_ENVIRON = "serverless_tts.key_id"


@dataclass(frozen=True)
class StoredKey:
    id: str
    sha256: str
    label: str = ""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its id."""
    key_id = secrets.token_hex(4)
    return f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}", key_id


def parse_keys(text: str) -> dict[str, StoredKey]:
    """The keys of a document ``{"keys": [{"id", "sha256", "label"}, ...]}`` (or its bare list).
    Anything else (another shape, nesting too deep for the parser) is a ValueError."""
    try:
        data = json.loads(text) if text.strip() else []
    except RecursionError:
        raise ValueError("API keys: JSON nested too deeply") from None
    entries = data.get("keys", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError('API keys: expected a list of keys, or {"keys": [...]}')
    keys = {}
    for entry in entries:
        fields = entry if isinstance(entry, dict) else {}
        key_id, sha256 = fields.get("id"), fields.get("sha256")
        if isinstance(key_id, int) and not isinstance(key_id, bool):  # a hand-written 12345678
            key_id = str(key_id)
        if not (isinstance(key_id, str) and _KEY_ID.fullmatch(key_id)):
            raise ValueError("API keys: every entry needs an id of 8 hex digits")
        if not (isinstance(sha256, str) and _SHA256.fullmatch(sha256.lower())):
            raise ValueError(f"API key {key_id}: sha256 must be 64 hex digits")
        keys[key_id] = StoredKey(key_id, sha256.lower(), str(fields.get("label", "")))
    return keys


class KeyRing:
    """The valid keys, from inline JSON and/or a file re-read every ``reload_s`` seconds. A file
    that cannot be read or parsed while serving (a bad secret version) keeps the keys last read:
    logged once per distinct failure, and ``degraded`` until a good file is read again."""

    def __init__(
        self,
        inline: str = "",
        path: str = "",
        reload_s: float = RELOAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inline = parse_keys(inline) if inline else {}
        self._path = Path(path) if path else None
        self._reload_s, self._clock = reload_s, clock
        self._lock = threading.Lock()
        self._loaded_at = self._clock()
        self._from_file: dict[str, StoredKey] = {}
        self._failure: str | None = None  # what the last read of the file met, when it failed
        if self._path is not None:  # a missing or broken file fails the start, not a request
            self._from_file = parse_keys(self._path.read_text(encoding="utf-8"))

    @property
    def configured(self) -> bool:
        return bool(self._inline) or self._path is not None

    @property
    def degraded(self) -> bool:
        """Whether the last read of the key file failed (the keys read before it still serve)."""
        return self._failure is not None

    def _reload(self, now: float) -> None:
        assert self._path is not None
        self._loaded_at = now  # success or not: the next read is reload_s away
        try:
            text = self._path.read_bytes()
            keys = parse_keys(text.decode("utf-8"))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            # Once per distinct failure: a file that stays broken is not logged every reload_s.
            failure = f"{type(exc).__name__}: {exc}"
            if failure != self._failure:
                log.warning(
                    "cannot read the API key file %s; keeping the %d keys read before: %s",
                    self._path,
                    len(self._from_file),
                    failure,
                )
            self._failure = failure
            return
        if self._failure is not None:
            log.info("the API key file %s is readable again: %d keys", self._path, len(keys))
        self._failure = None
        self._from_file = keys

    def keys(self) -> dict[str, StoredKey]:
        if self._path is not None and self._clock() - self._loaded_at >= self._reload_s:
            with self._lock:
                now = self._clock()
                if now - self._loaded_at >= self._reload_s:  # not reloaded while this one waited
                    self._reload(now)
        return self._inline | self._from_file

    def check(self, presented: str) -> StoredKey | None:
        """The stored key ``presented`` is, or None; constant time in the secret."""
        match = KEY_RE.match(presented)
        stored = self.keys().get(match["id"]) if match else None
        expected = stored.sha256 if stored is not None else _NO_DIGEST
        ok = hmac.compare_digest(digest(presented), expected)
        return stored if ok and stored is not None else None


def presented_key(request: Request, bearer: bool) -> str | None:
    if key := request.headers.get("X-API-Key"):
        return key.strip()
    if bearer:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def unauthorized(code: str, message: str, bearer: bool) -> ApiError:
    challenge = {"WWW-Authenticate": 'Bearer realm="serverless-tts"'} if bearer else {}
    return ApiError(401, code, message, headers=challenge)


def guard(ring: KeyRing, bearer: bool, open_paths: Collection[str]) -> Callable[[Request], None] | None:
    """What the HTTP adapter runs before routing: raises a 401, or tags the request's log lines
    with the caller's key id. None when no keys are configured (nothing to check)."""
    if not ring.configured:
        return None
    where = "an X-API-Key header" + (" or Authorization: Bearer" if bearer else "")

    def check(request: Request) -> None:
        if (request.path.rstrip("/") or "/") in open_paths:
            return
        presented = presented_key(request, bearer)
        if presented is None:
            raise unauthorized("missing_api_key", f"this service needs an API key in {where}", bearer)
        stored = ring.check(presented)
        if stored is None:
            raise unauthorized("invalid_api_key", "the API key is not valid (revoked, or mistyped)", bearer)
        annotate(key_id=stored.id)
        request.environ[CALLER_ENVIRON] = stored.id

    return check


def caller(request: Request) -> str | None:
    """The id of the key the request came with (set by the guard), or None where keys are off."""
    return request.environ.get(CALLER_ENVIRON)


# --- the key command ---------------------------------------------------------------------------


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8") or "[]")
    return list(data.get("keys", []) if isinstance(data, Mapping) else data)


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    parse_keys(json.dumps(entries))  # never write what the service would refuse to read
    path.write_text(json.dumps({"keys": entries}, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m function.auth", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a key: print it once, append its hash to --file")
    new.add_argument("--label", default="", help="who or what the key is for (kept beside the hash)")
    new.add_argument("--file", type=Path, required=True, help="the JSON key file (created if missing)")
    revoke = commands.add_parser("revoke", help="remove a key by id from --file")
    revoke.add_argument("id")
    revoke.add_argument("--file", type=Path, required=True)
    listing = commands.add_parser("list", help="ids, labels and creation times in --file")
    listing.add_argument("--file", type=Path, required=True)
    args = parser.parse_args(argv)

    entries = _read(args.file)
    if args.command == "new":
        key, key_id = new_key()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entries.append({"id": key_id, "sha256": digest(key), "label": args.label, "created": created})
        _write(args.file, entries)
        print(key)
        print(f"key id {key_id} added to {args.file}; the key is shown only now", file=sys.stderr)
    elif args.command == "revoke":
        kept = [e for e in entries if e.get("id") != args.id]
        if len(kept) == len(entries):
            print(f"no key {args.id} in {args.file}", file=sys.stderr)
            return 1
        _write(args.file, kept)
    else:
        for entry in entries:
            print(f"{entry['id']}\t{entry.get('created', '')}\t{entry.get('label', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
