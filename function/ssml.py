"""SSML (the subset README documents) -> ``function.document.Document``, with a hardened parser.

defusedxml's expat reader refuses every DTD (so no entity is ever declared: no billion laughs, no
external entity, no network or file access); on top of it the markup has a byte limit, the tree a
depth limit and an element limit, attributes a length limit. Anything malformed or outside the
subset is a 400 ``invalid_ssml`` naming the element and where it is (line, column, offset), so
markup is never read aloud. Imported only by requests that send SSML or use lexicons: the plain
path never loads the XML machinery.
"""

from __future__ import annotations

import bisect
import re
import xml.sax
import xml.sax.handler
from dataclasses import dataclass, field
from typing import Any, NoReturn

from defusedxml import DefusedXmlException
from defusedxml.sax import parseString

from function.document import Alphabet, Break, Document, Element, Item, Phoneme, Segment, Utterance
from function.errors import ApiError
from function.phonetics import numbered_pinyin
from function.text import split_sentences

MAX_DEPTH = 32
MAX_ELEMENTS = 10_000
MAX_ATTRIBUTE_CHARS = 1024
# Polly's and Azure's longest break.
MAX_BREAK_S = 10.0
# W3C's strengths, as Polly times them (none .. a paragraph's pause).
BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.4, "strong": 0.7, "x-strong": 1.0}
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "fast": 1.25, "x-fast": 1.5}
SAY_AS = frozenset(
    ["characters", "spell-out", "digits", "cardinal", "ordinal", "telephone", "date", "time", "currency"]
)
ALPHABETS: dict[str, Alphabet] = {"ipa": "ipa", "pinyin": "pinyin", "x-pinyin": "pinyin"}
# Each element and the attributes it may carry (anything else is refused, not ignored).
ATTRIBUTES: dict[str, frozenset[str]] = {
    "speak": frozenset(["version", "xmlns", "xml:lang", "xmlns:xsi", "xsi:schemaLocation"]),
    "p": frozenset(),
    "s": frozenset(),
    "break": frozenset(["time", "strength"]),
    "say-as": frozenset(["interpret-as", "format"]),
    "sub": frozenset(["alias"]),
    "phoneme": frozenset(["alphabet", "ph"]),
    "prosody": frozenset(["rate"]),
    "lang": frozenset(["xml:lang"]),
}
# Elements whose content is text only: one segment spoken their way.
LEAVES = frozenset(["say-as", "sub", "phoneme", "break"])
_TIME = re.compile(r"(\d+(?:\.\d+)?)(ms|s)")
_PERCENT = re.compile(r"([+-]?)(\d+(?:\.\d+)?)%")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def parse(source: str, *, max_bytes: int, max_chars: int, field_name: str = "ssml") -> Document:
    """The document ``source`` says, or a 400 naming what is wrong and where."""
    size = len(source.encode())
    if size > max_bytes:
        raise ApiError(
            400,
            "ssml_too_long",
            f"has {size} bytes of markup; the limit is {max_bytes} bytes (the characters it speaks "
            f"count separately, against the {max_chars}-character limit)",
            field=field_name,
        )
    handler = _Builder(source, field_name)
    try:
        parseString(source.encode(), handler, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        # The only way in: a <!DOCTYPE> (every entity needs one), refused before it is read.
        offset = max(source.find("<!"), 0)
        where = {"element": "!DOCTYPE", "line": source.count("\n", 0, offset) + 1, "offset": offset}
        raise _error(
            field_name,
            f"<!DOCTYPE> at offset {offset}: DTDs and entities are not allowed ({type(exc).__name__})",
            where,
        ) from None
    except xml.sax.SAXParseException as exc:
        line, column = exc.getLineNumber(), exc.getColumnNumber()
        raise _error(
            field_name,
            f"is not well-formed XML: {exc.getMessage()} at line {line}, column {column + 1}",
            where={"line": line, "column": column + 1},
        ) from None
    return handler.document()


def _error(field_name: str, message: str, where: dict[str, Any] | None = None) -> ApiError:
    return ApiError(400, "invalid_ssml", message, field=field_name, extra=where or {})


@dataclass
class _Frame:
    element: str
    start: int
    rate: float
    lang: str | None
    attrs: dict[str, str] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)  # a leaf's content


class _Builder(xml.sax.handler.ContentHandler):
    """SAX events -> utterances and breaks, each with its offsets in the source."""

    def __init__(self, source: str, field_name: str) -> None:
        super().__init__()
        self._source = source
        self._field = field_name
        self._line_starts = [0, *(m.end() for m in re.finditer("\n", source))]
        self._locator: Any = None
        self._stack: list[_Frame] = []
        self._elements = 0
        self._items: list[Item] = []
        self._segments: list[Segment] = []
        self._utterance: tuple[float, str | None] = (1.0, None)  # the rate and lang being spoken
        self._chars: list[str] = []  # text not yet in a segment, and where each character is
        self._offsets: list[int] = []
        self._language: str | None = None
        self._holders: list[Element] = []  # elements that hold others, as they close

    def document(self) -> Document:
        elements = tuple(sorted(self._holders, key=lambda e: e.start))
        return Document(tuple(self._items), self._language, source=self._field, elements=elements)

    # -- positions and errors ---------------------------------------------------------------------

    def setDocumentLocator(self, locator: Any) -> None:
        self._locator = locator

    def _offset(self) -> int:
        line, column = self._locator.getLineNumber(), self._locator.getColumnNumber()
        return self._line_starts[min(line, len(self._line_starts)) - 1] + column

    def _refuse(self, element: str, problem: str, offset: int | None = None) -> NoReturn:
        offset = self._offset() if offset is None else offset
        line = bisect.bisect_right(self._line_starts, offset)
        column = offset - self._line_starts[line - 1] + 1
        raise _error(
            self._field,
            f"<{element}> at line {line}, column {column} (offset {offset}): {problem}",
            where={"element": element, "line": line, "column": column, "offset": offset},
        )

    # -- SAX events -------------------------------------------------------------------------------

    def startElement(self, name: str, attrs: Any) -> None:
        offset = self._offset()
        self._flush_text()
        self._elements += 1
        if self._elements > MAX_ELEMENTS:
            self._refuse(name, f"the document has more than {MAX_ELEMENTS} elements")
        if len(self._stack) >= MAX_DEPTH:
            self._refuse(name, f"elements nest deeper than {MAX_DEPTH} levels")
        if not self._stack and name != "speak":
            self._refuse(name, "the document must be one <speak> element")
        if self._stack and name == "speak":
            self._refuse(name, "<speak> cannot be inside another element")
        if name not in ATTRIBUTES:
            self._refuse(name, f"unsupported element; supported: {', '.join(ATTRIBUTES)}")
        parent = self._stack[-1] if self._stack else None
        if parent is not None and parent.element in LEAVES:
            self._refuse(name, f"<{parent.element}> holds text only, not elements")
        values = {key: attrs.getValue(key) for key in attrs.getNames()}
        for key, value in values.items():
            if key not in ATTRIBUTES[name] and not key.startswith("xmlns:"):
                allowed = ", ".join(sorted(ATTRIBUTES[name])) or "none"
                self._refuse(name, f"unsupported attribute {key!r}; allowed: {allowed}")
            if len(value) > MAX_ATTRIBUTE_CHARS:
                self._refuse(name, f"attribute {key!r} is longer than {MAX_ATTRIBUTE_CHARS} characters")
        rate, lang = (parent.rate, parent.lang) if parent else (1.0, None)
        if name in ("p", "s", "prosody", "lang", "break"):
            self._end_utterance()
        if name == "speak":
            lang = self._language = self._language_tag(name, values.get("xml:lang"), required=False)
        elif name == "prosody":
            rate *= self._rate(values.get("rate"))
        elif name == "lang":
            lang = self._language_tag(name, values.get("xml:lang"), required=True)
        self._check_leaf(name, values)
        self._stack.append(_Frame(name, offset, rate, lang, values))

    def endElement(self, name: str) -> None:
        offset = self._offset()
        # An end tag's position is its "</"; an empty element's (<break/>) is just past it.
        end = offset + len(name) + 3 if self._source.startswith("</", offset) else offset
        if self._stack[-1].element in LEAVES:
            self._leaf(self._stack.pop(), end)
            return
        self._flush_text()
        frame = self._stack.pop()
        self._holders.append(Element(name, tuple(frame.attrs.items()), frame.start, end))
        if name in ("p", "s", "prosody", "lang", "speak"):
            self._end_utterance()

    def characters(self, content: str) -> None:
        frame = self._stack[-1]
        if frame.element == "break":
            if content.strip():
                self._refuse("break", "holds no text", frame.start)
            return
        if frame.element in LEAVES:
            frame.text.append(content)
            return
        offset = self._offset()
        # Text as written: each character at its place; a character from an entity or character
        # reference (&amp; &#x91CD;) at the reference's.
        as_written = self._source.startswith(content, offset)
        self._chars.extend(content)
        self._offsets.extend(offset + i if as_written else offset for i in range(len(content)))

    def processingInstruction(self, target: str, data: str) -> None:
        self._refuse(f"?{target}", "processing instructions are not supported")

    def skippedEntity(self, name: str) -> None:
        self._refuse(self._stack[-1].element if self._stack else "speak", f"entity &{name}; is not allowed")

    # -- building ---------------------------------------------------------------------------------

    def _check_leaf(self, name: str, values: dict[str, str]) -> None:
        if name == "say-as" and values.get("interpret-as") not in SAY_AS:
            got = values.get("interpret-as")
            self._refuse(
                name, f"interpret-as={got!r} is not supported; supported: {', '.join(sorted(SAY_AS))}"
            )
        if name == "sub" and not values.get("alias", "").strip():
            self._refuse(name, "needs a non-empty alias attribute")
        if name == "phoneme":
            alphabet = values.get("alphabet", "ipa")
            if alphabet not in ALPHABETS:
                self._refuse(
                    name, f"alphabet={alphabet!r} is not supported; supported: ipa, pinyin (x-pinyin)"
                )
            if not values.get("ph", "").strip():
                self._refuse(name, "needs a non-empty ph attribute")
            if ALPHABETS[alphabet] == "pinyin":
                try:
                    numbered_pinyin(values["ph"])
                except ValueError as exc:
                    self._refuse(name, str(exc))
        if name == "break":
            self._break_seconds(values)

    def _leaf(self, frame: _Frame, end: int) -> None:
        name, values = frame.element, frame.attrs
        if name == "break":
            self._items.append(Break(self._break_seconds(values), frame.start, end))
            return
        content = "".join(frame.text)
        if name == "sub":
            segment = Segment(values["alias"], frame.start, end, source="sub")
        elif not content.strip():
            self._refuse(name, "has no text to speak", frame.start)
        elif name == "phoneme":
            alphabet = ALPHABETS[values.get("alphabet", "ipa")]
            phoneme = Phoneme(alphabet, " ".join(values["ph"].split()))
            segment = Segment(content, frame.start, end, phoneme=phoneme, source="phoneme")
        else:
            segment = Segment(content, frame.start, end, say_as=values["interpret-as"], source="say-as")
            if "format" in values:
                segment = Segment(**{**segment.__dict__, "say_as_format": values["format"]})
        self._utterance_for(frame)
        self._segments.append(segment)

    def _utterance_for(self, frame: _Frame) -> None:
        """Start a new utterance when ``frame`` speaks at another rate or in another language."""
        if (frame.rate, frame.lang) != self._utterance:
            self._end_utterance()
            self._utterance = (frame.rate, frame.lang)

    def _flush_text(self) -> None:
        """The text gathered so far as segments, ending an utterance at each sentence end in it."""
        if not self._chars:
            return
        text, offsets = "".join(self._chars), self._offsets
        self._chars, self._offsets = [], []
        self._utterance_for(self._stack[-1])
        # Line breaks are blanks in XML: one blank each keeps every character at its offset.
        flat = re.sub(r"\s", " ", text)
        sentences = split_sentences(flat, max_chars=len(flat) + 1)
        position = 0
        for index, sentence in enumerate(sentences):
            begin = flat.index(sentence, position)
            stop = len(flat) if index == len(sentences) - 1 else begin + len(sentence)
            piece = flat[position:stop]
            self._segments.append(Segment(piece, offsets[position], offsets[stop - 1] + 1))
            if index < len(sentences) - 1:
                self._end_utterance()
            position = stop
        if not sentences:  # blanks only: the space between words of one utterance
            self._segments.append(Segment(flat, offsets[0], offsets[-1] + 1))

    def _end_utterance(self) -> None:
        segments = tuple(self._segments)
        self._segments = []
        # Punctuation alone (a full stop after a <prosody>) says nothing: no utterance of its own.
        if any(s.phoneme is not None or any(c.isalnum() for c in s.text) for s in segments):
            rate, lang = self._utterance
            self._items.append(Utterance(_trimmed(segments), rate, lang))

    # -- attribute values -------------------------------------------------------------------------

    def _break_seconds(self, values: dict[str, str]) -> float:
        if "time" in values:
            match = _TIME.fullmatch(values["time"].strip())
            if match is None:
                self._refuse("break", f"time={values['time']!r} is not a time such as 500ms or 1.5s")
            seconds = float(match[1]) / (1000 if match[2] == "ms" else 1)
            if seconds > MAX_BREAK_S:
                self._refuse("break", f"time={values['time']!r} is longer than the {MAX_BREAK_S:g} s limit")
            return seconds
        strength = values.get("strength", "medium")
        if strength not in BREAK_STRENGTHS:
            self._refuse("break", f"strength={strength!r} is not one of {', '.join(BREAK_STRENGTHS)}")
        return BREAK_STRENGTHS[strength]

    def _rate(self, value: str | None) -> float:
        if value is None:
            self._refuse("prosody", "needs a rate attribute (pitch and volume are not supported)")
        if value in RATES:
            return RATES[value]
        match = _PERCENT.fullmatch(value.strip())
        if match is None:
            self._refuse(
                "prosody", f"rate={value!r} is not a percentage (80%, +20%) or one of {', '.join(RATES)}"
            )
        percent = float(match[2])
        rate = 1 + (percent if match[1] == "+" else -percent) / 100 if match[1] else percent / 100
        if rate <= 0:
            self._refuse("prosody", f"rate={value!r} is not a positive rate")
        return rate

    def _language_tag(self, element: str, value: str | None, *, required: bool) -> str | None:
        if value is None:
            if required:
                self._refuse(element, "needs an xml:lang attribute")
            return None
        if not _LANGUAGE_TAG.fullmatch(value):
            self._refuse(element, f"xml:lang={value!r} is not a language tag such as zh-CN or en-US")
        return value


def _trimmed(segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
    """The segments without blank ones at either end (their offsets would point at layout)."""
    kept = list(segments)
    while kept and not kept[0].text.strip() and kept[0].phoneme is None:
        kept.pop(0)
    while kept and not kept[-1].text.strip() and kept[-1].phoneme is None:
        kept.pop()
    return tuple(kept)
