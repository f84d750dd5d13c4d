"""Real translation models made at test time: a SentencePiece model trained on a few
hundred lines and a random-weight Marian transformer in OPUS-MT's release layout, which
CTranslate2's own converter turns into the model the server loads. The bench builds one
with OPUS-MT's exact dimensions."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import sentencepiece as spm
import yaml

LINES = [
    "今日はいい天気ですね。", "明日は雨が降るでしょう。", "配信を始めます。", "ありがとうございます。",
    "このゲームは面白いです。", "駅はどこですか？", "コーヒーを一杯ください。", "また明日会いましょう。",
    "新しいコンピューターを買いました。", "日本語を勉強しています。", "電車は十時に出発します。",
    "皆さん、こんにちは。", "それでは、始めましょう。", "週末は映画を見に行きます。",
]


def train_spm(directory: Path, vocab_size=100, lines=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "corpus.txt"
    lines = lines or LINES
    corpus.write_text("\n".join(line * (1 + i % 3) for i in range(30) for line in lines), encoding="utf-8")
    prefix = directory / "spm"
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size,
                                   character_coverage=1.0, model_type="unigram", minloglevel=2,
                                   hard_vocab_limit=False)
    return prefix.with_suffix(".model")


def _vocab_yml(tokens: list[str]) -> str:
    return "".join(f"{json.dumps(token, ensure_ascii=False)}: {i}\n" for i, token in enumerate(tokens))


def write_opus_mt_release(directory: Path, *, vocab_size=None, d_model=16, heads=2, ffn=32, layers=1,
                          spm_vocab=100, spm_lines=None, seed=0) -> Path:
    """An OPUS-MT-shaped release folder: decoder.yml, model .npz, vocab .yml, source/target.spm."""
    directory.mkdir(parents=True, exist_ok=True)
    spm_model = train_spm(directory / "spm-train", spm_vocab, spm_lines)
    for name in ("source.spm", "target.spm"):
        (directory / name).write_bytes(spm_model.read_bytes())
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) not in ("<s>", "</s>",
                                                                                             "<unk>")]
    tokens = ["</s>", "<unk>", *pieces]
    if vocab_size:
        tokens += [f"▁filler{i}" for i in range(vocab_size - len(tokens))]
    (directory / "vocab.yml").write_text(_vocab_yml(tokens), encoding="utf-8")
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    weights = {"Wemb": w(len(tokens), d_model), "decoder_ff_logit_out_b": w(1, len(tokens))}

    def attention(scope):
        for p in "qkvo":
            weights[f"{scope}_W{p}"] = w(d_model, d_model)
            weights[f"{scope}_b{p}"] = w(1, d_model)
        weights[f"{scope}_Wo_ln_scale"] = np.ones((1, d_model), np.float32)
        weights[f"{scope}_Wo_ln_bias"] = np.zeros((1, d_model), np.float32)

    def feed_forward(scope):
        weights.update({f"{scope}_W1": w(d_model, ffn), f"{scope}_b1": w(1, ffn), f"{scope}_W2": w(ffn, d_model),
                        f"{scope}_b2": w(1, d_model), f"{scope}_ffn_ln_scale": np.ones((1, d_model), np.float32),
                        f"{scope}_ffn_ln_bias": np.zeros((1, d_model), np.float32)})

    for layer in range(1, layers + 1):
        attention(f"encoder_l{layer}_self")
        feed_forward(f"encoder_l{layer}_ffn")
        attention(f"decoder_l{layer}_self")
        attention(f"decoder_l{layer}_context")
        feed_forward(f"decoder_l{layer}_ffn")
    config = {
        "type": "transformer", "enc-depth": layers, "dec-depth": layers, "transformer-heads": heads,
        "transformer-ffn-activation": "swish", "transformer-preprocess": "", "transformer-postprocess": "dan",
        "transformer-postprocess-emb": "d", "transformer-decoder-autoreg": "self-attention",
        "transformer-no-projection": False, "transformer-guided-alignment-layer": "last",
    }
    weights["special:model.yml"] = np.frombuffer(yaml.safe_dump(config).encode() + b"\0", dtype=np.int8)
    np.savez(directory / "opus.spm-test.transformer.model1.npz.best-perplexity.npz", **weights)
    (directory / "decoder.yml").write_text(yaml.safe_dump({
        "models": ["opus.spm-test.transformer.model1.npz.best-perplexity.npz"],
        "vocabs": ["vocab.yml", "vocab.yml"],
    }))
    return directory


def opus_mt_zip(release: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for item in release.iterdir():
            if item.is_file():
                z.write(item, item.name)
    return buf.getvalue()


def converted_model(release: Path, target: Path) -> Path:
    """Convert a release the way `translation_model fetch` does."""
    from translation.installing import convert_opus_mt

    target.mkdir(parents=True)
    convert_opus_mt(release, target)
    return target


def argos_package(model_dir: Path, *, from_code="ja", to_code="en") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("translate-ja_en/metadata.json", json.dumps({
            "package_version": "1.1", "from_code": from_code, "to_code": to_code}))
        for item in model_dir.iterdir():
            if item.name not in ("source.spm", "target.spm"):
                z.write(item, f"translate-ja_en/model/{item.name}")
        z.write(model_dir / "source.spm", "translate-ja_en/sentencepiece.model")
    return buf.getvalue()
