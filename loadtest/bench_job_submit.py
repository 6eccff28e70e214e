"""What submitting a job costs (``POST /jobs`` less HTTP): plain text before and after SSML jobs
landed, and the same document as SSML (parse, cut between utterances, each part parsed once,
checked and planned).

Each trial is a fresh process per tree that loads hibari and times ``jobs.submit`` of a
~100 000-character English document (``loadtest.texts``-like paragraphs) into a new local store
with a publisher that keeps the messages in memory (Pub/Sub's round trip is not what changed),
after one warm-up; in this tree also the same paragraphs as ``<p><s>…</s></p>`` SSML. With
``--baseline REF`` the plain runs also run for git ``REF``'s code, trials alternated.

What could make the figures wrong: other work on the machine (the load average is printed; run it
under ``flock -x /tmp/heavy.lock``); only differences larger than the spread between trials of one
tree mean anything.

    flock -x /tmp/heavy.lock python -m loadtest.bench_job_submit --baseline main --trials 3
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadtest.revisions import compare, run_in

TRIAL = """
import json, sys, tempfile, time
from function.config import Settings
from function.jobs import JobRequest, submit
from function.registry import Engines
from function.storage import LocalStore
from pathlib import Path

class Kept:
    def parts(self, messages): self.messages = messages
    def result(self, message): pass

WORDS = ["river", "mountain", "lantern", "harbor", "meadow", "violet", "thunder", "copper"]
paragraphs = [
    " ".join(f"The {WORDS[(p + s) % 8]} number {p * 3 + s} is quiet tonight." for s in range(3))
    for p in range(820)
]
plain = "\\n\\n".join(paragraphs)
sentences = ["<p><s>" + p.replace(". ", ".</s><s>") + "</s></p>" for p in paragraphs]
marked = "<speak>" + "".join(sentences) + "</speak>"
settings = Settings(engines=("hibari",), output_uri=tempfile.mkdtemp(), jobs_push_urls=("http://127.0.0.1:9",))
engines = Engines(settings)
cases = {"plain": (JobRequest(text=plain), plain), "ssml": (JobRequest(ssml=marked), marked)}
out = {"chars": len(plain)}
for name, (request, document) in cases.items():
    times = []
    try:
        for rep in range(int(sys.argv[1]) + 1):
            store = LocalStore(Path(tempfile.mkdtemp()))
            t = time.perf_counter()
            submitted = submit(request, document, store, engines, settings, Kept())
            times.append(time.perf_counter() - t)
    except Exception as exc:
        print(name, "not measured:", exc, file=sys.stderr)  # a tree before SSML jobs refuses SSML
        continue
    out[f"{name}_ms"] = sorted(times[1:])[len(times[1:]) // 2] * 1000
    out[f"{name}_parts"] = submitted.job.parts
print(json.dumps(out))
"""


def trial(name: str, tree: Path) -> dict[str, float]:
    return run_in(tree, TRIAL, "3")


def main(argv: Sequence[str] | None = None) -> None:
    compare(trial, __doc__, argv, digits=1)


if __name__ == "__main__":
    main()
