"""V4 signed URLs: signed locally when the credentials hold a key (no network involved)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud import storage
from google.oauth2 import service_account

from function.storage import GcsStore


def key_credentials() -> service_account.Credentials:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return service_account.Credentials.from_service_account_info(
        {
            "type": "service_account",
            "client_email": "tts@example-project.iam.gserviceaccount.com",
            "private_key": pem,
            "private_key_id": "test",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


def test_signed_url_is_v4_for_the_object_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    # The emulator fixture exports STORAGE_EMULATOR_HOST; a production client never sees it.
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    client = storage.Client(project="example-project", credentials=key_credentials())
    store = GcsStore("audio-bucket", "tts", client=client)
    url = store.signed_url("abc.wav", ttl_s=900)
    assert url is not None
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert parsed.scheme == "https" and parsed.path == "/audio-bucket/tts/abc.wav"
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Expires"] == ["900"]
    assert query["X-Goog-Credential"][0].startswith("tts@example-project.iam.gserviceaccount.com/")
    assert len(query["X-Goog-Signature"][0]) == 512  # hex of a 2048-bit RSA signature
