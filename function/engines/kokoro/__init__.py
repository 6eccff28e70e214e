"""Kokoro-82M v1.0 (Apache-2.0) on onnxruntime: Mandarin Chinese and English voices.

Modules, one job each:

- ``files.py``: the model directory's layout, the pinned hashes, finding and checking the model.
- ``assets.py``: builds a model directory (build time only: Makefile, Dockerfile).
- ``quantize.py``: the static model, the decoder's convolutions re-quantised with calibrated
  scales (build time only, called by ``assets.py``).
- ``catalogue.py``: which voices are offered, their languages, OpenAI's names for them.
- ``normalize.py``: Chinese text as read aloud: Traditional to Simplified (OpenCC), numbers,
  dates, times, money, units, codes and addresses in words (WeTextProcessing's grammar + rules).
- ``dictionary.py``: jieba's dictionary as a memory-mapped trie (built by ``assets.py``).
- ``pinyin.py``: Simplified Chinese to tone-numbered pinyin (pypinyin, jieba, tone sandhi).
- ``frontend.py``: text to phonemes (misaki's v1.0 pinyin-to-IPA mapping, hibari's English G2P).
- ``chunking.py``: sentences and pieces that fit the model's 510-phoneme context.
- ``engine.py``: ``KokoroEngine``.

Languages offered: Mandarin (``zf_``/``zm_``, ``zh-CN``, reading English words inside Chinese
text), American English (``af_``/``am_``) and British English (``bf_``/``bm_``). Left out, though
kokoro-js ships their voices, because their front ends cannot run here:

- Japanese (``jf_``/``jm_``): misaki's ``ja`` imports pyopenjtalk, which downloads its dictionary
  on first use, and its cutlet path needs unidic (a ~500 MB dictionary downloaded after install).
- Spanish, French, Hindi, Italian, Brazilian Portuguese (``e``/``f``/``h``/``i``/``p``): Kokoro
  phonemizes them with espeak-ng (GPL-3.0), through misaki's ``espeak`` module.

Cost of the ``kokoro`` extra (measured on a shared 2 vCPU AMD EPYC, Python 3.11, with onnxruntime
and hibari-tts already installed by the base package):

- install size 152 MB: the model parts 92 MB, jieba 42 MB (its dictionary), misaki 15 MB (English
  lexicons that only its ``en`` extra reads, shipped in every install), pypinyin 3.9 MB, cn2an +
  proces + addict + ordered-set < 1 MB; cn2an's wheel also drops stray top-level ``build/``,
  ``example/`` and ``src/`` folders (1.8 MB) into site-packages. A model dir adds 28 MB: the 36
  offered voices (18 MB) and jieba's dictionary trie (2.3 MB); 92 MB more with ``--write-model``.
- added for reading Chinese right (issue 22): wetext 0.1.8 45 MB installed (its Chinese TN
  graphs are 3.6 MB; the English, Japanese and inverse-normalisation graphs ride along),
  kaldifst 3.8 MB, OpenCC 7 MB, contractions + textsearch + pyahocorasick + anyascii 3 MB;
  import: wetext 0.29 s, jieba.posseg 0.31 s (its HMM tables), OpenCC 5 ms.
- import time (``python -X importtime``, cumulative): ``frontend`` 0.22-0.25 s (pypinyin's
  dictionaries 0.14 s, cn2an 0.07 s, jieba 0.01 s), ``hibari.g2p`` 0.19 s (it imports the hibari
  package, and scipy with it), onnxruntime 0.02 s; mapping jieba's dictionary (``dictionary.py``;
  marisa-trie 5.3 MB installed, 3-8 ms to import) under 1 ms. None of it is paid before
  ``load()``, and hibari's G2P only on the first English words.
- load and speed (``loadtest/bench_kokoro.py``, one intra-op thread): ``load()`` ~0.9 s; process
  start -> first Chinese audio 1.6 s (first clause) and 2.65 s (the whole 14-character sentence,
  2.8 s of speech; docs/kokoro.md); real-time
  factor 0.27-0.36 for Mandarin, ~0.3 for English; peak RSS ~420 MB after the first request,
  more for long pieces (onnxruntime's arena keeps the largest request's activations) and ~90 MB
  per English G2P once used.
"""

from __future__ import annotations

from function.engines.kokoro.engine import KokoroEngine

__all__ = ["KokoroEngine"]
