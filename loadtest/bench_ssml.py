"""What SSML and lexicons cost, and that the plain path pays nothing for them.

Each trial is a fresh process per tree (imports cold, as in a new instance) with hibari: it plans
a plain request many times and synthesizes it a few times, and says whether the XML machinery was
imported by the plain path. With ``--baseline REF`` the same plain trial runs for git ``REF``'s
code (a worktree of it), alternated with this checkout's in the same run. This checkout then also
times the SSML path: parsing a document that uses every element, planning it, applying a lexicon
to a plain text, and synthesizing the document beside the same words as plain text.

What could make the figures wrong: other work on the machine (the load average is printed; on a
shared 2 vCPU machine it moves these by tens of per cent; run it under ``flock /tmp/bench.lock``);
hibari's synthesis time dominates a request, so the plan figures are the ones that show a change.

    flock /tmp/bench.lock python -m loadtest.bench_ssml --baseline main --trials 5
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadtest.revisions import REPO, compare, run_in

LEXICONS = REPO / "tests" / "data" / "lexicons"
PLAIN = "The quick brown fox jumps over the lazy dog, and Siobhan met the W3C at 4 pm."
SSML = (
    '<speak xml:lang="en-US"><p><s>The quick brown fox <phoneme alphabet="ipa" ph="ˈdʒʌmps">jumps</phoneme>'
    ' over the lazy dog,</s><break time="300ms"/><s>and <sub alias="Siobhan">Siobhan</sub> met the '
    '<say-as interpret-as="characters">W3C</say-as> at <prosody rate="90%">4 pm</prosody>.</s></p>'
    '<lang xml:lang="en-GB">Cheers.</lang></speak>'
)
# Run in the measured tree's own interpreter session; argv: "plain" or "ssml", the lexicon dir.
TRIAL = """
import json, sys, time
started = time.perf_counter()
from function import pipeline
from function.config import Settings
from function.registry import Engines
from function.schema import SynthesizeRequest
imported = time.perf_counter() - started
mode, lexicon_dir, plain, ssml = sys.argv[1:5]
settings = Settings(engines="hibari", threads=1)
engines = Engines(settings)
def plan(body, cfg=settings):
    return pipeline.plan(SynthesizeRequest.model_validate(body), engines, cfg, max_chars=4096, timeout_s=300)
def median_us(call, n):
    times = []
    for _ in range(n):
        t = time.perf_counter(); call(); times.append(time.perf_counter() - t)
    return sorted(times)[n // 2] * 1e6
def synth_ms(made, n=5):
    return median_us(lambda: pipeline.synthesize(made, 200), n) / 1000
out = {"import_ms": imported * 1000, "plain_plan_us": median_us(lambda: plan({"text": plain}), 2000)}
plain_plan = plan({"text": plain})
plain_plan.engine.ensure_loaded()
out["plain_synth_ms"] = synth_ms(plain_plan)
xml_modules = ("xml.sax", "defusedxml", "function.ssml")
out["xml_imported_by_plain"] = float(any(m in sys.modules for m in xml_modules))
if mode == "ssml":
    from function import ssml as parser
    out["ssml_parse_us"] = median_us(lambda: parser.parse(ssml, max_bytes=65536, max_chars=4096), 2000)
    out["ssml_plan_us"] = median_us(lambda: plan({"ssml": ssml}), 2000)
    lexical = Settings(engines="hibari", threads=1, lexicon_dir=lexicon_dir)
    out["lexicon_plan_us"] = median_us(lambda: plan({"text": plain, "lexicons": ["names"]}, lexical), 2000)
    out["ssml_synth_ms"] = synth_ms(plan({"ssml": ssml}))
    words = plan({"ssml": ssml}).text
    out["same_words_plain_synth_ms"] = synth_ms(plan({"text": words}))
    # Each element alone: ten of it in a document, planned (parsed, checked, keyed), beside the
    # ten sentences as plain text.
    elements = {
        "s": "<s>Hello there.</s>", "break": "Hello there.<break time='200ms'/>",
        "sub": "<sub alias='Hello there'>hi</sub>.",
        "phoneme": "<phoneme ph='həˈloʊ'>Hello</phoneme> there.",
        "say-as": "<say-as interpret-as='cardinal'>12</say-as> there.",
        "prosody": "<prosody rate='90%'>Hello there.</prosody>",
        "lang": "<lang xml:lang='en-GB'>Hello there.</lang>",
    }
    ten = " ".join(["Hello there."] * 10)
    out["ten_plain_sentences_plan_us"] = median_us(lambda: plan({"text": ten}), 500)
    for name, markup in elements.items():
        document = "<speak>" + markup * 10 + "</speak>"
        out[f"ten_{name}_plan_us"] = median_us(lambda: plan({"ssml": document}), 500)
print(json.dumps(out))
"""


def trial(name: str, tree: Path) -> dict[str, float]:
    """The baseline's plain path, or this checkout's plain and SSML paths."""
    mode = "plain" if name == "baseline" else "ssml"
    return run_in(tree, TRIAL, mode, str(LEXICONS), PLAIN, SSML)


def main(argv: Sequence[str] | None = None) -> None:
    compare(trial, __doc__, argv, digits=1)


if __name__ == "__main__":
    main()
