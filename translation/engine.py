"""A CTranslate2 translation model with its SentencePiece tokenizers.

Loaded once per process and shared by all threads. Concurrent requests share
`translate_batch` calls (see `SharedBatches`). Under load each call runs on one of the
model's `inter_threads` replicas. A call that has the machine to itself is split over the
replicas by length, or, when it is only a few sentences, runs on a second copy of the
model that puts every thread on one batch.
"""

from __future__ import annotations

import atexit
import gc
import json
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ctranslate2
import sentencepiece as spm

META_FILE = "jpt_model.json"
# A cut is preferred after these pieces when a sentence is longer than the model takes.
SOFT_BREAKS = ("、", "，", ",", "；", "：")
# Marian's own decoder stops at 3x the source length (its --max-length-factor default):
# a real model says "stop" long before, so this only bounds a model that babbles.
LENGTH_FACTOR = 3.0
MIN_DECODING_LENGTH_CAP = 16  # "はい。" is 2 pieces; "Yes, that's right." is more
MAX_DECODING_LENGTH = 512
# Requests waiting for a free call are merged up to this many pieces: small requests gain
# a lot from sharing, large ones already fill a batch and would only wait for each other.
MAX_SHARED_PIECES = 64
# A call running alone with up to this many pieces goes to the copy of the model that puts
# every core on one batch. Measured with OPUS-MT's size on 2 cores, against one batch a
# replica: 100 against 148 ms for 1 piece, 197 against 247 for 10, 326 against 346 for 20,
# even at 50.
SOLO_MAX_PIECES = 16


class SentenceCache:
    """A small thread-safe LRU of sentence translations: greetings and UI strings repeat."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: str, value: str) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class _Request:
    def __init__(self, pieces: list[list[str]]) -> None:
        self.pieces = pieces
        self.done = False
        self.outputs: list[str] = []
        self.error: BaseException | None = None


class SharedBatches:
    """Lets concurrent requests share model calls, without a timer or a thread of its own.

    A request runs at once while fewer than `slots` calls are in flight. Otherwise it
    waits, and the next thread to get a free slot runs one call for the waiting requests,
    oldest first, as many as fit in `max_pieces`. A thread whose request another thread
    took into its call has nothing to do until that call ends, so it too runs a call for
    the waiting requests while a slot is free: a free slot never stays idle while a request
    waits. A lone request never waits for a batch window; under load, batches grow by
    themselves. Eight concurrent clients sending one or five sentences each got about
    twice the throughput (bench/translate.py).

    A request with nothing else in flight or waiting runs *alone*: it takes every slot, so
    that requests arriving meanwhile wait for it (and then share a call) instead of
    competing with it for the cores.
    """

    def __init__(self, run: Callable[[list[list[str]], bool], list[str]], *, slots: int, max_pieces: int) -> None:
        self._run = run
        self._slots = slots
        self.max_pieces = max_pieces
        self._busy = 0
        self._waiting: list[_Request] = []
        self._changed = threading.Condition()
        self.calls = 0

    def translate(self, pieces: list[list[str]]) -> list[str]:
        request = _Request(pieces)
        with self._changed:
            self._waiting.append(request)
        while True:
            with self._changed:
                # Until ours is done, run a call whenever a slot is free and a request waits:
                # ours, or, when another thread took ours into its call, the ones after it.
                while not request.done and not (self._waiting and self._busy < self._slots):
                    self._changed.wait()
                if request.done:
                    break
                batch = self._take()
                alone = self._busy == 0 and not self._waiting
                slots = self._slots if alone else 1
                self._busy += slots
                self.calls += 1
            self._run_batch(batch, alone, slots)  # ours, unless others have waited longer
        if request.error is not None:
            raise request.error
        return request.outputs

    def _take(self) -> list[_Request]:
        """Waiting requests in order of arrival, the first always, the others while they fit."""
        batch: list[_Request] = []
        size = 0
        for request in self._waiting:
            if batch and size + len(request.pieces) > self.max_pieces:
                break
            batch.append(request)
            size += len(request.pieces)
        del self._waiting[: len(batch)]
        return batch

    def _run_batch(self, batch: list[_Request], alone: bool, slots: int) -> None:
        try:
            outputs = self._run([piece for request in batch for piece in request.pieces], alone)
            start = 0
            for request in batch:
                request.outputs = outputs[start : start + len(request.pieces)]
                start += len(request.pieces)
        except BaseException as exc:  # noqa: BLE001 - every request in the call fails with it, not just ours
            for request in batch:
                request.error = exc
        finally:
            with self._changed:
                self._busy -= slots
                for request in batch:
                    request.done = True
                self._changed.notify_all()


def is_model_dir(path: Path) -> bool:
    return (path / "model.bin").exists() and (path / "source.spm").exists() and (path / "target.spm").exists()


def read_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return {"name": path.name, "version": ""}


class TranslationModel:
    def __init__(
        self,
        path: Path,
        *,
        inter_threads: int = 2,
        intra_threads: int = 1,
        max_input_tokens: int = 256,
        cache_size: int = 1024,
        beam_size: int = 1,
        max_shared_pieces: int = MAX_SHARED_PIECES,
        length_factor: float = LENGTH_FACTOR,
    ) -> None:
        self.path = Path(path)
        self.translator = ctranslate2.Translator(
            str(self.path), device="cpu", compute_type="int8", inter_threads=inter_threads, intra_threads=intra_threads
        )
        # A lone sentence cannot be split over replicas, and decoding it one token at a time is
        # bound by reading the weights: every core on it was 1.5-1.6x faster than one (bench/
        # translate.py). A second copy costs about 70 MB of int8 weights.
        self.solo = (
            self.translator
            if inter_threads == 1
            else ctranslate2.Translator(
                str(self.path),
                device="cpu",
                compute_type="int8",
                inter_threads=1,
                intra_threads=inter_threads * intra_threads,
            )
        )
        self.source = spm.SentencePieceProcessor(model_file=str(self.path / "source.spm"))
        self.target = spm.SentencePieceProcessor(model_file=str(self.path / "target.spm"))
        meta = read_meta(self.path)
        self.label = f"{meta['name']}@{meta['version']}" if meta.get("version") else meta["name"]
        self.replicas = inter_threads
        self.max_input_tokens = max_input_tokens
        self.beam_size = beam_size
        self.length_factor = length_factor
        self.cache = SentenceCache(cache_size)
        self.shared = SharedBatches(self._translate_pieces, slots=inter_threads, max_pieces=max_shared_pieces)
        _loaded.add(self)

    @property
    def calls(self) -> int:
        """translate_batch calls so far, for tests and the bench."""
        return self.shared.calls

    def chunks(self, sentence: str) -> list[list[str]]:
        """Tokens of a sentence, cut into pieces the model can take: nothing is dropped.

        A cut goes after the last 、 or similar in the second half of the window, so that
        each piece still reads as a phrase; without one, at the window's end."""
        tokens = self.source.encode(sentence, out_type=str)
        limit = self.max_input_tokens
        pieces = []
        while len(tokens) > limit:
            breaks = [i + 1 for i in range(limit // 2, limit) if tokens[i].strip("▁") in SOFT_BREAKS]
            cut = breaks[-1] if breaks else limit
            pieces.append(tokens[:cut])
            tokens = tokens[cut:]
        if tokens:
            pieces.append(tokens)
        return pieces

    def translate_sentences(self, sentences: list[str]) -> list[str]:
        """Translate what the cache does not know, each distinct sentence once, in one call."""
        cached = {sentence: self.cache.get(sentence) for sentence in sentences}
        known = {sentence: english for sentence, english in cached.items() if english is not None}
        todo = [sentence for sentence in cached if sentence not in known]
        if todo:
            owners: list[str] = []
            pieces: list[list[str]] = []
            for sentence in todo:
                for piece in self.chunks(sentence):
                    owners.append(sentence)
                    pieces.append(piece)
            parts: dict[str, list[str]] = {sentence: [] for sentence in todo}
            for owner, english in zip(owners, self.shared.translate(pieces), strict=True):
                parts[owner].append(english.strip())
            for sentence in todo:
                english = " ".join(parts[sentence])
                known[sentence] = english
                self.cache.put(sentence, english)
        return [known[sentence] for sentence in sentences]

    def decoding_cap(self, length: int) -> int:
        """Most tokens a piece of `length` source tokens may decode to."""
        return min(MAX_DECODING_LENGTH, max(MIN_DECODING_LENGTH_CAP, math.ceil(length * self.length_factor)))

    def decoding_options(self, pieces: list[list[str]]) -> dict[str, int | Callable[[Any], bool]]:
        """translate_batch options for one call.

        Each piece stops at its own bound, not at the longest piece's: a short sentence that
        babbles is cut where it should be, and a batch does not decode every sentence as long
        as its longest. Greedy search reports each step to a callback, which says when."""
        caps = [self.decoding_cap(len(piece)) for piece in pieces]
        options: dict[str, int | Callable[[Any], bool]] = {
            "beam_size": self.beam_size,
            "max_batch_size": len(pieces),
            "max_decoding_length": max(caps),
        }
        if self.beam_size == 1:  # CTranslate2 calls back only in greedy search
            options["callback"] = lambda step: step.step + 1 >= caps[step.batch_id]
        return options

    def shares(self, pieces: list[list[str]]) -> list[list[int]]:
        """The pieces' indexes, one share a replica: runs of similar length (a batch costs about
        its longest piece's steps) with about the same total length each.

        CTranslate2 splitting one call would give each replica the same count, so the replica
        with the long half finishes last while the other waits. Measured on 50 sentences and 2
        replicas: 85 sentences/s split by count, 93 split by length; dealing pieces out in turn
        (95) cost 10 % more CPU a sentence, which concurrent requests pay for."""
        by_length = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        total = sum(len(piece) for piece in pieces)
        shares: list[list[int]] = []
        share: list[int] = []
        taken = 0
        for i in by_length:
            share.append(i)
            taken += len(pieces[i])
            if len(shares) < self.replicas - 1 and taken >= total * (len(shares) + 1) / self.replicas:
                shares.append(share)
                share = []
        return shares + [share] if share else shares

    def _translate_pieces(self, pieces: list[list[str]], alone: bool) -> list[str]:
        """Alone, a few pieces run as one batch on every core, and more pieces as one batch a
        replica (as fast, and each replica's working memory is already sized for large
        batches: the solo copy's stays small). With other calls running, one batch on a free
        replica wastes the least CPU."""
        if not alone:
            translator, shares = self.translator, [list(range(len(pieces)))]
        elif len(pieces) <= SOLO_MAX_PIECES:
            translator, shares = self.solo, [list(range(len(pieces)))]
        else:
            translator, shares = self.translator, self.shares(pieces)
        calls = []
        for share in shares:
            source = [pieces[i] for i in share]
            calls.append(
                (share, translator.translate_batch(source, asynchronous=True, **self.decoding_options(source)))
            )
        english: list[str] = [""] * len(pieces)
        for share, results in calls:
            for i, result in zip(share, results, strict=True):
                english[i] = self.target.decode(result.result().hypotheses[0])
        return english


_loaded: weakref.WeakSet[TranslationModel] = weakref.WeakSet()


@atexit.register
def _release_translators() -> None:
    """CTranslate2's threads keep the last call's Python callback; freed during interpreter
    shutdown, it aborts the process ("terminate called without an active exception", about
    one exit in five here). Freed before shutdown, it does not."""
    for model in list(_loaded):
        model.translator = model.solo = None
    gc.collect()
