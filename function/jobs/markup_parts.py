"""Cutting an SSML job into parts, each an SSML document of its own.

A part is a run of whole utterances (``function.document``): the caller's markup from the first
one's start to the last one's end, verbatim, with the elements open at either cut re-opened before
it and closed after it (``<speak xml:lang="zh-CN"><p><prosody rate="80%">`` … ``</prosody></p>
</speak>``). Cuts fall only between utterances, so never inside an element that speaks (a
``<sub>``, ``<phoneme>``, ``<say-as>``) nor inside a tag; every part parses to exactly the
utterances it was cut from (checked here, so a part can never be refused later; the parse that
checks it is the one the job plans it from, so each part is parsed once). What lies between
two parts is silence: the ``<break>``\\ s there, or the sentence pause where there are none, as the
engine would have spoken the whole document (``Engine.speak_document``). Because a part's markup is
the caller's, verbatim, an offset into a part maps onto the caller's markup by one shift: speech
marks of the whole document point into the SSML the caller sent, as ``/synthesize``'s do.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from function.document import Break, Document, Element, Item, Utterance
from function.errors import ApiError
from function.jobs.split import is_boundary


@dataclass(frozen=True)
class MarkupPart:
    """One part: its markup, what to add to an offset into it for the caller's markup, the
    silence before it (samples; 0 for the first part), and its markup parsed (``pipeline.plan``
    takes it instead of parsing the markup again)."""

    ssml: str
    shift: int
    pause_samples: int
    document: Document


def markup_parts(
    source: str,
    document: Document,
    *,
    max_chars: int,
    max_bytes: int,
    sample_rate: int,
    pause_ms: int,
) -> list[MarkupPart]:
    """``document`` (parsed from ``source``) as parts of at most ``max_chars`` spoken characters
    and ``max_bytes`` of markup, in order; a 400 naming the utterance that cannot fit one part."""
    groups = _groups(source, document, max_chars, max_bytes)
    items = document.items
    parts: list[MarkupPart] = []
    for number, (first, last) in enumerate(groups):
        # The first part keeps what comes before its first utterance (a leading <break>), the
        # last what comes after its last; between parts, the breaks become the pause.
        begin = 0 if number == 0 else first
        end = len(items) - 1 if number == len(groups) - 1 else last
        start, stop = items[begin].start, _past_reference(source, items[end].end)
        prefix = "".join(_start_tag(e) for e in _open_at(document.elements, start))
        suffix = "".join(f"</{e.name}>" for e in reversed(_open_at(document.elements, stop)))
        markup = f"{prefix}{source[start:stop]}{suffix}"
        parsed = _check(markup, items[begin : end + 1], document, start, max_bytes)
        pause = _pause(items[groups[number - 1][1] + 1 : first], sample_rate, pause_ms) if number else 0
        parts.append(MarkupPart(markup, start - len(prefix), pause, parsed))
    return parts


def _groups(source: str, document: Document, max_chars: int, max_bytes: int) -> list[tuple[int, int]]:
    """The parts as (first, last) item indices of their utterances: filled up to the limits, and
    ended early where the text says (content-defined, as plain parts: ``function.jobs.split``)."""
    items = document.items
    groups: list[tuple[int, int]] = []
    first = last = -1  # the current group's first and last utterance; -1: none yet
    chars = 0
    for index, item in enumerate(items):
        if not isinstance(item, Utterance):
            continue
        size = len(item.text.strip()) + 1
        if size > max_chars:
            problem = f"speaks {size - 1} characters; a part speaks at most {max_chars}"
            raise _uncuttable(item, problem, document.source)
        if len(source[item.start : item.end].encode()) > max_bytes // 2:
            problem = f"has more markup than a part holds ({max_bytes // 2} bytes)"
            raise _uncuttable(item, problem, document.source)
        if first >= 0 and (
            chars + size > max_chars or len(source[items[first].start : item.end].encode()) > max_bytes // 2
        ):
            groups.append((first, last))
            first = -1
        if first < 0:
            first, chars = index, 0
        chars += size
        last = index
        if chars >= max_chars // 2 and is_boundary(item.text):
            groups.append((first, last))
            first = -1
    if first >= 0:
        groups.append((first, last))
    return groups


def _open_at(elements: tuple[Element, ...], offset: int) -> list[Element]:
    """The elements around ``offset``, outermost first (they are sorted by their start)."""
    return [e for e in elements if e.start < offset < e.end]


def _start_tag(element: Element) -> str:
    attrs = "".join(f" {name}={quoteattr(value)}" for name, value in element.attrs)
    return f"<{element.name}{attrs}>"


def _past_reference(source: str, offset: int) -> int:
    """``offset``, or just past the character reference it falls in (a text segment that ends in
    ``&amp;`` ends one character into it: every character of a reference has its offset)."""
    amp = source.rfind("&", 0, offset)
    if amp >= 0 and source.find(";", amp, offset) < 0 and source.find("<", amp, offset) < 0:
        # A bare "&" can only be inside a CDATA section: ``_check`` refuses a cut there.
        end = source.find(";", offset)
        return end + 1 if end >= 0 else offset
    return offset


def _pause(between: tuple[Item, ...], sample_rate: int, pause_ms: int) -> int:
    """The silence between two parts: their breaks (each rounded as the engine rounds it), or the
    sentence pause where there is none."""
    breaks = [item for item in between if isinstance(item, Break)]
    if not breaks:
        return round(pause_ms / 1000 * sample_rate)
    return sum(round(b.seconds * sample_rate) for b in breaks)


def _check(markup: str, items: tuple[Item, ...], document: Document, start: int, max_bytes: int) -> Document:
    """The part parsed, which must say exactly what its slice of the document says (markup the cut
    could break, such as a CDATA section holding a bare ``&`` across sentences, is refused here
    rather than in a part)."""
    from function import ssml  # the XML machinery only for SSML jobs

    try:
        part = ssml.parse(markup, max_bytes=max_bytes, max_chars=len(markup), field_name=document.source)
    except ApiError:
        part = None
    expected = Document(items, document.language).key()
    if part is None or Document(part.items, part.language).key() != expected:
        raise ApiError(
            400,
            "invalid_ssml",
            f"cannot be cut into parts between utterances at offset {start} (a CDATA section holding "
            "& or < across sentences?); write them as &amp; and &lt;",
            field=document.source,
            extra={"offset": start},
        )
    return part


def _uncuttable(utterance: Utterance, problem: str, field_name: str) -> ApiError:
    return ApiError(
        400,
        "text_too_long",
        f"the utterance at offset {utterance.start} {problem}: a job is cut between utterances "
        "(sentences, <s>, <p>); end it with punctuation or mark its sentences",
        field=field_name,
        extra={"offset": utterance.start},
    )
