"""CosyVoice v1's text tokenizer: whisper's multilingual BPE, without openai-whisper.

The model yaml names ``whisper.tokenizer.get_tokenizer(multilingual=True, num_languages=100,
language='en', task='transcribe')`` with ``allowed_special: 'all'``; upstream's frontend calls
``tokenizer.encode(text, allowed_special='all')``, which is ``tiktoken.Encoding.encode``. So the
tokenizer is a tiktoken encoding built like whisper's ``get_encoding("multilingual", 100)``: the
ranks from ``multilingual.tiktoken`` (shipped inside the openai-whisper package, copied next to
the weights at image build time) plus whisper's special tokens in whisper's order. 50257 ranks +
1609 specials = 51866, the model's ``text_token_size``.
"""

from __future__ import annotations

import binascii
from pathlib import Path

import tiktoken

VOCAB_FILE = "multilingual.tiktoken"

# whisper.tokenizer.LANGUAGES, in order (its keys decide the ids of the language tokens).
WHISPER_LANGUAGES = [
    "en",
    "zh",
    "de",
    "es",
    "ru",
    "ko",
    "fr",
    "ja",
    "pt",
    "tr",
    "pl",
    "ca",
    "nl",
    "ar",
    "sv",
    "it",
    "id",
    "hi",
    "fi",
    "vi",
    "he",
    "uk",
    "el",
    "ms",
    "cs",
    "ro",
    "da",
    "hu",
    "ta",
    "no",
    "th",
    "ur",
    "hr",
    "bg",
    "lt",
    "la",
    "mi",
    "ml",
    "cy",
    "sk",
    "te",
    "fa",
    "lv",
    "bn",
    "sr",
    "az",
    "sl",
    "kn",
    "et",
    "mk",
    "br",
    "eu",
    "is",
    "hy",
    "ne",
    "mn",
    "bs",
    "kk",
    "sq",
    "sw",
    "gl",
    "mr",
    "pa",
    "si",
    "km",
    "sn",
    "yo",
    "so",
    "af",
    "oc",
    "ka",
    "be",
    "tg",
    "sd",
    "gu",
    "am",
    "yi",
    "lo",
    "uz",
    "fo",
    "ht",
    "ps",
    "tk",
    "nn",
    "mt",
    "sa",
    "lb",
    "my",
    "bo",
    "tl",
    "mg",
    "as",
    "tt",
    "haw",
    "ln",
    "ha",
    "ba",
    "jw",
    "su",
    "yue",
]

# whisper's pre-tokenisation pattern (whisper/tokenizer.py, get_encoding).
PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _special_tokens(num_languages: int) -> list[str]:
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{lang}|>" for lang in WHISPER_LANGUAGES[:num_languages]],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
        *[f"<|{i * 0.02:.2f}|>" for i in range(1501)],
    ]


class TextTokenizer:
    """Text -> token ids, identical to upstream's ``tokenizer.encode(text, allowed_special='all')``."""

    def __init__(self, vocab_path: Path, num_languages: int = 100) -> None:
        # "<base64 token> <rank>" lines, read in one piece: ~3x faster than line by line with
        # base64.b64decode (~60 ms at load for the 50257 ranks).
        fields = vocab_path.read_bytes().split()
        if len(fields) % 2:
            raise ValueError(f"{vocab_path}: not a tiktoken vocabulary")
        ranks = dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))
        specials = {token: len(ranks) + i for i, token in enumerate(_special_tokens(num_languages))}
        self.encoding = tiktoken.Encoding(
            name=vocab_path.name,
            explicit_n_vocab=len(ranks) + len(specials),
            pat_str=PATTERN,
            mergeable_ranks=ranks,
            special_tokens=specials,
        )

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode(text, allowed_special="all")
