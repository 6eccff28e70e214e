"""Stand-ins, on loopback, for the two places the CosyVoice stage downloads from that these machines
cannot reach: PyTorch's CPU index (TORCH_INDEX_URL) and the Hugging Face hub (HF_ENDPOINT).

* a PEP 503 index holding the pinned CPU torch and its dependencies, as this machine's pip finds
  them (`pip download`, through its own configuration);
* a hub answering what ``snapshot_download`` asks (repository info at a revision, then each file)
  with the tiny random CosyVoice model in the official layout (loadtest/upstream_cosyvoice): it
  stands in for FunAudioLLM/CosyVoice-300M-SFT's weights, which the image otherwise fetches by
  commit. Everything after the download (tokenizer vocabulary and its hash, convert and prune, the
  self-test) is the Dockerfile's own.

    python -m tests.image.model_sources PORT      # serves until killed; build args on stdout
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import subprocess
import sys
import urllib.parse
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from function.local import REPO
from loadtest.upstream_cosyvoice.random_model import build_tiny_model

STATE = REPO / "build" / "image"
REPOSITORY = "FunAudioLLM/CosyVoice-300M-SFT"  # the Dockerfile's COSYVOICE_REPO
REVISION = "0" * 40  # the stand-in's one commit


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def torch_wheels(version: str) -> Path:
    wheels = STATE / "torch-wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "-d",
            str(wheels),
            f"torch=={version}",
        ],
        stdout=sys.stderr,  # stdout carries only the build arguments
        check=True,
        timeout=900,
    )
    return wheels


def git_blob_id(file: Path) -> str:
    data = file.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class Sources(BaseHTTPRequestHandler):
    def __init__(self, *args: object, wheels: Path, model: Path, **kwargs: object) -> None:
        self.wheels, self.model = wheels, model
        super().__init__(*args, **kwargs)

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def do_GET(self) -> None:
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        path = urllib.parse.unquote(self.path.split("?")[0])  # torch-2.13.0%2Bcpu-...
        if m := re.fullmatch(r"/simple/([^/]+)/?", path):
            files = [
                w.name for w in sorted(self.wheels.iterdir()) if normalized(w.name.split("-")[0]) == m[1]
            ]
            links = "".join(f'<a href="/files/{urllib.parse.quote(f)}">{html.escape(f)}</a>\n' for f in files)
            self.send(200, f"<html><body>\n{links}</body></html>".encode(), "text/html", body)
        elif m := re.fullmatch(r"/files/([^/]+)", path):
            self.send_file(self.wheels / m[1], body)
        elif path.startswith(f"/api/models/{REPOSITORY}/revision/"):  # huggingface_hub < 1
            files = [{"rfilename": f.name} for f in sorted(self.model.iterdir())]
            info = {"id": REPOSITORY, "sha": REVISION, "siblings": files}
            self.send(200, json.dumps(info).encode(), "application/json", body)
        elif path.startswith(f"/api/models/{REPOSITORY}/tree/"):  # huggingface_hub >= 1
            tree = [
                {"type": "file", "path": f.name, "size": f.stat().st_size, "oid": git_blob_id(f)}
                for f in sorted(self.model.iterdir())
            ]
            self.send(200, json.dumps(tree).encode(), "application/json", body)
        elif m := re.fullmatch(rf"/{REPOSITORY}/resolve/[^/]+/([^/]+)", path):
            self.send_file(self.model / m[1], body)
        else:
            self.send(404, b"not here", "text/plain", body)

    def send_file(self, file: Path, body: bool) -> None:
        if file.parent.exists() and file.is_file():
            data = file.read_bytes()
            self.send(200, data, "application/octet-stream", body, etag=hashlib.sha256(data).hexdigest())
        else:
            self.send(404, b"not here", "text/plain", body)

    def send(self, status: int, data: bytes, content_type: str, body: bool, etag: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Repo-Commit", REVISION)
        if etag:
            self.send_header("ETag", f'"{etag}"')
        self.end_headers()
        if body:
            self.wfile.write(data)


def main() -> None:
    port = int(sys.argv[1])
    torch_version = sys.argv[2] if len(sys.argv) > 2 else "2.13.0"
    wheels = torch_wheels(torch_version)
    model = build_tiny_model(STATE / "cosyvoice-tiny")
    (model / "multilingual.tiktoken").unlink()  # the hub repository does not ship it: the image adds it
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(Sources, wheels=wheels, model=model))
    url = f"http://127.0.0.1:{port}"
    args = {"TORCH_INDEX_URL": f"{url}/simple", "HF_ENDPOINT": url, "COSYVOICE_REVISION": REVISION}
    print(" ".join(f"--build-arg={key}={value}" for key, value in args.items()), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
