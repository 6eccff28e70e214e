"""What a warm request that names a bucket lexicon costs: before (read and hashed on every use,
its matching pattern built per request) and after (kept per generation of its object: one
metadata read per use; the pattern built once per set of lexicons).

fake-gcs-server runs on loopback (started here; every trial's process reaches it through
``STORAGE_EMULATOR_HOST``, with the real google-cloud-storage client) and holds two lexicons: the
tests' 3-entry ``names.pls`` and a generated one of 2,000 lexemes (~150 KB). Each trial is a fresh
process per tree with hibari that, after one warm-up, times the median of N ``pipeline.plan`` calls
of a sentence naming the lexicon (where the lexicon is fetched), and of plan + ``execute`` when the
audio is already stored in a local folder (a repeated request: an audio cache hit). With
``--baseline REF`` the same trial runs for git ``REF``'s code, alternated.

What could make the figures wrong: the emulator answers in well under a millisecond on loopback;
GCS answers a metadata read in tens of milliseconds, a download of the same object takes longer,
so the saving in production is a download (and a hash and parse), not these microseconds. Other
work on the machine (the load average is printed; run it under ``/tmp/quietly``).

    python -m loadtest.bench_bucket_lexicon --baseline main --trials 5
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from loadtest.revisions import REPO, compare, run_in

BUCKET = "bench-lexicons"
SENTENCE = "Our site is on the WWW today, and Siobhan met the W3C."
TRIAL = """
import json, sys, tempfile, time
from pathlib import Path
from function import pipeline
from function.config import Settings
from function.registry import Engines
from function.schema import SynthesizeRequest
from function.storage import LocalStore
bucket, sentence, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = Settings(engines="hibari", threads=1, input_bucket=bucket, output_uri=tempfile.mkdtemp())
engines = Engines(settings)
store = LocalStore(Path(settings.output_uri))
def median_ms(call):
    call()  # warm: the client made, the lexicon read once, the audio stored
    times = []
    for _ in range(runs):
        t = time.perf_counter(); call(); times.append(time.perf_counter() - t)
    return sorted(times)[runs // 2] * 1000
out = {}
for name in ("small", "large"):
    request = SynthesizeRequest(text=sentence, lexicons=[f"gs://{bucket}/lexicons/{name}.pls"])
    def plan():
        return pipeline.plan(request, engines, settings, max_chars=4096, timeout_s=300)
    out[f"{name}_plan_ms"] = median_ms(plan)
    out[f"{name}_hit_ms"] = median_ms(lambda: pipeline.execute(plan(), store, settings, want_audio=False))
print(json.dumps(out))
"""


def large_lexicon(lexemes: int = 2000) -> bytes:
    """A lexicon of ``lexemes`` made-up words, each with an IPA pronunciation."""
    rows = "".join(
        f"<lexeme><grapheme>Brand{n:04d}</grapheme><phoneme>bɹænd{n % 10}</phoneme></lexeme>\n"
        for n in range(lexemes)
    )
    head = '<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa">'
    return f"{head}\n{rows}</lexicon>\n".encode()


def trial(name: str, tree: Path) -> dict[str, float]:
    return run_in(tree, TRIAL, BUCKET, SENTENCE, "50")


def main(argv: Sequence[str] | None = None) -> None:
    from tests.conftest import fake_gcs, gcs_client

    with fake_gcs() as emulator:
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.url  # inherited by every trial's process
        bucket = gcs_client(emulator.url).create_bucket(BUCKET)
        names = (REPO / "tests" / "data" / "lexicons" / "names.pls").read_bytes()
        for name, content in (("small", names), ("large", large_lexicon())):
            bucket.blob(f"lexicons/{name}.pls").upload_from_string(
                content, content_type="application/pls+xml"
            )
        compare(trial, __doc__, argv, digits=3)


if __name__ == "__main__":
    main()
