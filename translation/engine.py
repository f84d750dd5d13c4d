"""A CTranslate2 translation model with its SentencePiece tokenizers.

Loaded once per process and shared by all threads: CTranslate2 runs `inter_threads`
batches at a time and queues the rest, so concurrent requests need no lock of ours.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import ctranslate2
import sentencepiece as spm

META_FILE = "jpt_model.json"
# A cut is preferred after these pieces when a sentence is longer than the model takes.
SOFT_BREAKS = ("、", "，", ",", "；", "：")


class SentenceCache:
    """A small thread-safe LRU of sentence translations: greetings and UI strings repeat."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key, value):
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def is_model_dir(path: Path) -> bool:
    return (path / "model.bin").exists() and (path / "source.spm").exists() and (path / "target.spm").exists()


def read_meta(path: Path) -> dict:
    try:
        return json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return {"name": path.name, "version": ""}


class TranslationModel:
    def __init__(self, path: Path, *, inter_threads=2, intra_threads=1, max_input_tokens=256, cache_size=1024,
                 beam_size=1):
        self.path = Path(path)
        self.translator = ctranslate2.Translator(str(self.path), device="cpu", compute_type="int8",
                                                 inter_threads=inter_threads, intra_threads=intra_threads)
        self.source = spm.SentencePieceProcessor(model_file=str(self.path / "source.spm"))
        self.target = spm.SentencePieceProcessor(model_file=str(self.path / "target.spm"))
        meta = read_meta(self.path)
        self.label = f"{meta['name']}@{meta['version']}" if meta.get("version") else meta["name"]
        self.max_input_tokens = max_input_tokens
        self.beam_size = beam_size
        self.cache = SentenceCache(cache_size)
        self.batches = 0  # translate_batch calls, for tests and the bench

    def chunks(self, sentence: str) -> list[list[str]]:
        """Tokens of a sentence, cut into pieces the model can take: nothing is dropped."""
        tokens = self.source.encode(sentence, out_type=str)
        pieces = []
        while len(tokens) > self.max_input_tokens:
            window = tokens[: self.max_input_tokens]
            cut = max((i + 1 for i, t in enumerate(window) if t.strip("▁") in SOFT_BREAKS), default=len(window))
            pieces.append(tokens[:cut])
            tokens = tokens[cut:]
        if tokens:
            pieces.append(tokens)
        return pieces

    def translate_sentences(self, sentences: list[str]) -> list[str]:
        """Translate in one batch call, skipping sentences already in the cache."""
        results: list[str | None] = [self.cache.get(s) for s in sentences]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            owners, batch = [], []
            for i in todo:
                for piece in self.chunks(sentences[i]):
                    owners.append(i)
                    batch.append(piece)
            longest = max(len(p) for p in batch)
            self.batches += 1
            outputs = self.translator.translate_batch(
                # Sub-batches of 16 let the two model replicas (inter_threads) share one request.
                batch, beam_size=self.beam_size, max_batch_size=16,
                # English runs about as long as the Japanese pieces; 1.5x leaves room without letting
                # a model that never says "stop" run on.
                max_decoding_length=min(512, max(16, int(longest * 1.5))),
            )
            parts: dict[int, list[str]] = {}
            for owner, output in zip(owners, outputs, strict=True):
                parts.setdefault(owner, []).append(self.target.decode(output.hypotheses[0]))
            for i in todo:
                results[i] = " ".join(p.strip() for p in parts[i])
                self.cache.put(sentences[i], results[i])
        return results  # type: ignore[return-value]
