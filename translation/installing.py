"""Installing a translation model: OPUS-MT release archives (converted with CTranslate2's
own converter, no PyTorch), converted CTranslate2 folders, or Argos Translate packages.
Every install lands in a temporary folder first and is renamed into place when whole."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import requests

from translation.engine import META_FILE, is_model_dir
from worker_client.models import Download, ModelError, download


def _finish(staging: Path, target: Path, meta: dict):
    if not is_model_dir(staging):
        raise ModelError("the result has no model.bin, source.spm and target.spm")
    (staging / META_FILE).write_text(json.dumps(meta))
    staging.chmod(0o755)
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def _staging(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))


def _safe_extract(archive: Path, into: Path):
    try:
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ModelError(f"{archive.name}: unsafe path {member}")
            z.extractall(into)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{archive.name} is not a valid zip archive") from exc


def convert_opus_mt(model_dir: Path, staging: Path):
    from ctranslate2.converters import OpusMTConverter

    OpusMTConverter(str(model_dir)).convert(str(staging / "ct2"), quantization="int8")
    for item in (staging / "ct2").iterdir():
        item.rename(staging / item.name)
    (staging / "ct2").rmdir()
    for spm_name in ("source.spm", "target.spm"):
        shutil.copyfile(model_dir / spm_name, staging / spm_name)


def fetch_opus_mt(
    url: str,
    target: Path,
    *,
    sha256: str | None = None,
    progress=True,
    session: requests.Session | None = None,
    converting: Callable[[], None] | None = None,
) -> Path:
    """Download, check, convert and install. `session` and `converting` let the background
    preparation (translation/preparing.py) count the bytes and say when conversion starts."""
    downloads = target.parent / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = download(
        Download(url, Path(url).name, sha256=sha256), downloads / Path(url).name, session=session, progress=progress
    )
    if converting is not None:
        converting()
    staging = _staging(target)
    try:
        unpacked = staging / "opus"
        _safe_extract(archive, unpacked)
        if not (unpacked / "decoder.yml").exists():
            raise ModelError(f"{archive.name} is not an OPUS-MT release (no decoder.yml)")
        convert_opus_mt(unpacked, staging)
        shutil.rmtree(unpacked)
        _finish(staging, target, {"name": "opus-mt-ja-en", "version": Path(url).stem, "source": url})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink(missing_ok=True)
    return target


def install_path(source: Path, target: Path) -> Path:
    """A converted CTranslate2 folder, or an Argos Translate .argosmodel package for ja→en."""
    staging = _staging(target)
    try:
        if source.is_dir():
            if not is_model_dir(source):
                raise ModelError(f"{source} needs model.bin, source.spm and target.spm (a converted CTranslate2 model)")
            for item in source.iterdir():
                if item.is_file():
                    shutil.copyfile(item, staging / item.name)
            meta = {"name": source.name, "version": "", "source": str(source)}
        elif source.suffix == ".argosmodel" or zipfile.is_zipfile(source):
            _install_argos(source, staging)
            meta = json.loads((staging / "argos-metadata.json").read_text())
            meta = {
                "name": f"argos-{meta.get('from_code', 'ja')}-{meta.get('to_code', 'en')}",
                "version": str(meta.get("package_version", "")),
                "source": str(source),
            }
        else:
            raise ModelError(f"{source} is neither a model folder nor an .argosmodel package")
        _finish(staging, target, meta)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _install_argos(package: Path, staging: Path):
    unpacked = staging / "argos"
    _safe_extract(package, unpacked)
    roots = [p for p in unpacked.iterdir() if p.is_dir()]
    root = roots[0] if len(roots) == 1 else unpacked
    metadata = json.loads((root / "metadata.json").read_text()) if (root / "metadata.json").exists() else {}
    if (metadata.get("from_code"), metadata.get("to_code")) not in ((None, None), ("ja", "en")):
        raise ModelError(f"this package translates {metadata.get('from_code')}→{metadata.get('to_code')}, not ja→en")
    if not (root / "model" / "model.bin").exists() or not (root / "sentencepiece.model").exists():
        raise ModelError("not an Argos Translate package (no model/model.bin and sentencepiece.model)")
    for item in (root / "model").iterdir():
        if item.is_file():
            shutil.copyfile(item, staging / item.name)
    shutil.copyfile(root / "sentencepiece.model", staging / "source.spm")
    shutil.copyfile(root / "sentencepiece.model", staging / "target.spm")
    (staging / "argos-metadata.json").write_text(json.dumps(metadata))
    shutil.rmtree(unpacked)
