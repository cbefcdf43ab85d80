"""File transcription on real speech, shaped like phone calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipscribe.asr.evaluation import word_error_rate
from sipscribe.media.audiofile import AudioFileError, write_audio
from sipscribe.media.resample import resample
from sipscribe.pipeline.filejob import transcribe_file
from sipscribe.testing.corpus import build_conversation, telephony


def _match(utterances, placed):  # type: ignore[no-untyped-def]
    """Pair each placed turn with the utterances that overlap it in time on any channel."""
    pairs = []
    for p in placed:
        hits = [
            u for u in utterances if u.start_ms / 1000 < p.end_s and u.end_ms / 1000 > p.start_s
        ]
        pairs.append((p, hits))
    return pairs


def test_stereo_ulaw_call_is_transcribed_per_channel(tmp_path: Path, corpus, engine) -> None:  # type: ignore[no-untyped-def]
    tracks, placed = build_conversation(corpus, gap_s=1.0)
    phone = [resample(telephony(t), 16000, 8000) for t in tracks]
    path = write_audio(tmp_path / "call.wav", phone, rate=8000, kind="wav-ulaw")
    result = transcribe_file(path, engine, roles=["agent", "customer"])
    assert result.info.channels == 2 and result.info.codec == "pcm_mulaw"
    pairs = _match(result.utterances, placed)
    for p, hits in pairs:
        assert hits, f"nothing recognised for {p.text!r}"
        assert {u.channel for u in hits} == {p.channel}, "utterance on the wrong channel"
        assert {u.role for u in hits} == {("agent", "customer")[p.channel]}
        assert abs(hits[0].start_ms / 1000 - p.start_s) <= 0.3, (p, hits[0].start_ms)
        assert abs(hits[-1].end_ms / 1000 - p.end_s) <= 0.3, (p, hits[-1].end_ms)
    wer = word_error_rate(
        [p.text for p, _ in pairs], [" ".join(u.text for u in hits) for _, hits in pairs]
    )
    assert wer <= 0.12, wer
    seqs = [u.sequence for u in result.utterances]
    assert seqs == list(range(1, len(seqs) + 1))
    starts = [u.start_ms for u in result.utterances]
    assert starts == sorted(starts)


@pytest.mark.parametrize(
    ("kind", "rate"),
    [("wav", 16000), ("wav-alaw", 8000), ("mp3", 44100), ("flac", 16000), ("ogg-opus", 48000)],
)
def test_every_listed_format(tmp_path: Path, librivox, engine, kind: str, rate: int) -> None:  # type: ignore[no-untyped-def]
    tracks, placed = build_conversation(librivox[:2], gap_s=1.0)
    path = write_audio(
        tmp_path / f"call.{kind}", [resample(t, 16000, rate) for t in tracks], rate=rate, kind=kind
    )
    result = transcribe_file(path, engine)
    pairs = _match(result.utterances, placed)
    assert all({u.channel for u in hits} == {p.channel} for p, hits in pairs)
    wer = word_error_rate(
        [p.text for p, _ in pairs], [" ".join(u.text for u in hits) for _, hits in pairs]
    )
    assert wer <= 0.15, (kind, wer)


def test_mono_recording_is_one_channel(tmp_path: Path, librivox, engine) -> None:  # type: ignore[no-untyped-def]
    tracks, _placed = build_conversation(librivox[:3], channels=1)
    path = write_audio(tmp_path / "mono.wav", tracks, rate=16000)
    result = transcribe_file(path, engine)
    assert result.info.channels == 1
    assert {u.channel for u in result.utterances} == {0}
    assert len(result.utterances) >= 3


def test_roles_must_cover_every_channel(tmp_path: Path, librivox, engine) -> None:  # type: ignore[no-untyped-def]
    tracks, _ = build_conversation(librivox[:2])
    path = write_audio(tmp_path / "s.wav", tracks, rate=16000)
    with pytest.raises(ValueError, match="1 role"):
        transcribe_file(path, engine, roles=["agent"])


def test_bad_files_raise_audio_file_error(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all")
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        transcribe_file(text, engine)
