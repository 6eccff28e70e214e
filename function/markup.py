"""A request's document (``function.document``): its SSML parsed and its lexicons applied, or None
for plain text that no lexicon changes. The XML machinery is imported only when there is markup
or a lexicon to read: a plain request without lexicons costs one ``if`` here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from function.config import Settings
from function.schema import SynthesizeRequest

if TYPE_CHECKING:
    from function.document import Document


def read_document(
    request: SynthesizeRequest,
    settings: Settings,
    *,
    max_chars: int,
    max_bytes: int,
    parsed: Document | None = None,
) -> Document | None:
    """The document ``request`` asks to be spoken, None when it is plain text as it stands.
    ``parsed``: its markup parsed already (a job's part, parsed when the job was cut)."""
    names = settings.lexicons if request.lexicons is None else request.lexicons
    if request.ssml is None and request.text_type == "text" and not names:
        return None  # plain text: the common case, decided in three comparisons
    markup = request.markup()
    from function import document, lexicons

    if parsed is not None:
        read = parsed
    elif markup is not None:
        from function import ssml

        source, field_name = markup
        read = ssml.parse(source, max_bytes=max_bytes, max_chars=max_chars, field_name=field_name)
    else:
        read = document.plain(request.text)
    if names:
        read = lexicons.apply(read, [lexicons.resolve(name, settings) for name in dict.fromkeys(names)])
        if markup is None and not any(s.source for s in read.segments):
            return None  # no entry matched: the plain text, with its plain audio key
    return read
