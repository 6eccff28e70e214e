"""What reading Chinese right costs: the Kokoro text front end's build time and its time per text.

Each trial is a fresh process (imports and dictionaries cold, as in a new instance) that builds
``TextFrontEnd`` and phonemizes every text of the reading set (tests/kokoro/data) for a Mandarin
voice. With ``--baseline REF`` the same runs for git ``REF``'s code (a worktree of it), trials
alternated with this checkout's in the same run.

What could make the figures wrong: other work on the machine (the load average is printed; on a
shared 2 vCPU machine it moves these by tens of per cent); the file cache (the first trial reads
the dictionaries from disk, the others from memory); the set's texts are short (6 characters on
average), so per-text times are for sentences, not paragraphs.

    python -m loadtest.bench_zh_frontend --baseline aa2080e --trials 5
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadtest.revisions import REPO, compare, run_in

DATA = REPO / "tests" / "kokoro" / "data"
KOKORO_DIR = REPO / "models" / "kokoro-82m"
# Run in the measured tree's own interpreter session: builds the front end, then reads every text.
TRIAL = """
import json, sys, time
start = time.perf_counter()
from pathlib import Path
from function.engines.kokoro.frontend import TextFrontEnd
imported = time.perf_counter()
front = TextFrontEnd(Path(sys.argv[1]) / "jieba.trie")
built = time.perf_counter()
texts = [line.split("\\t")[1] for path in sorted(Path(sys.argv[2]).glob("zh_readings_*.tsv"))
         for line in path.read_text("utf-8").splitlines() if line and line[0] != "#"]
times = []
for text in texts:
    t = time.perf_counter(); front.phonemes(text, "zh-CN"); times.append(time.perf_counter() - t)
print(json.dumps({"import_s": imported - start, "build_s": built - imported, "texts": len(texts),
                  "first_text_ms": times[0] * 1000, "median_ms": sorted(times)[len(times) // 2] * 1000,
                  "mean_ms": sum(times) / len(times) * 1000}))
"""


def trial(_: str, tree: Path) -> dict[str, float]:
    return run_in(tree, TRIAL, str(KOKORO_DIR), str(DATA))


def main(argv: Sequence[str] | None = None) -> None:
    compare(trial, __doc__, argv)


if __name__ == "__main__":
    main()
