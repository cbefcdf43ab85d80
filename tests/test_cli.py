from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sipscribe.cli import main
from sipscribe.media.audiofile import write_audio
from sipscribe.testing.corpus import build_conversation


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory: pytest.TempPathFactory, librivox) -> Path:  # type: ignore[no-untyped-def]
    tracks, _ = build_conversation(librivox[:2], gap_s=0.8)
    return write_audio(tmp_path_factory.mktemp("cli") / "call.wav", tracks, rate=16000)


def test_json_to_stdout(call_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe", str(call_wav), "--quiet"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["speech_state"] == "speech_recognized"
    assert {p["channel"] for p in body["payload"]} == {0, 1}
    assert "dashwood" in body["payload"][0]["text"].lower()


def test_text_to_file_with_roles(
    call_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.txt"
    rc = main(
        [
            "transcribe",
            str(call_wav),
            "-q",
            "-f",
            "text",
            "--roles",
            "agent,customer",
            "-o",
            str(out),
        ]
    )
    assert rc == 0 and capsys.readouterr().out == ""
    lines = out.read_text().splitlines()
    assert lines[0].startswith("[00:00] AGENT: ")
    assert lines[1].startswith("[00:") and "CUSTOMER: " in lines[1]


def test_roles_count_must_match(call_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe", str(call_wav), "-q", "--roles", "agent"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names 1 channel(s)" in err


def test_unknown_role(call_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe", str(call_wav), "--roles", "agent,boss"]) == 2
    assert "unknown role 'boss'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"hello, not audio", "not a readable audio file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a readable audio file"),
    ],
)
def test_bad_files_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    f = tmp_path / "bad.wav"
    f.write_bytes(content)
    assert main(["transcribe", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("sipscribe: error: ")


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe", "/nonexistent/call.wav"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_too_many_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import av
    import numpy as np

    path = tmp_path / "surround.wav"
    with av.open(str(path), "w", format="wav") as c:
        s = c.add_stream("pcm_s16le", rate=8000, layout="5.1")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 6 * 800), np.int16), format="s16", layout="5.1"
        )
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode(None)]:
            c.mux(p)
    assert main(["transcribe", str(path)]) == 2
    assert "6 audio channels" in capsys.readouterr().err


def test_progress_bar_on_stderr_for_long_files(tmp_path: Path, librivox) -> None:  # type: ignore[no-untyped-def]
    tracks, _ = build_conversation(librivox[:3], gap_s=1.0)  # > 5 s
    path = write_audio(tmp_path / "long.wav", tracks, rate=16000)
    proc = subprocess.run(
        [sys.executable, "-m", "sipscribe", "transcribe", str(path), "-f", "srt"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "recognising" in proc.stderr
    assert proc.stdout.startswith("1\n00:00:00,")


def test_config_file_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("http_port = [")
    assert main(["--config", str(bad), "transcribe", "x.wav"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
