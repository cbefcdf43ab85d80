"""Real human speech with reference transcripts, shaped into phone calls.

The recordings come from Debian's ``pocketsphinx-testdata`` package (LibriVox read
speech and spoken card names, 16 kHz mono). ``make test`` installs it; the helpers raise
``CorpusMissing`` (tests turn it into a skip with that message) when it is absent.
"""

from __future__ import annotations

import os
import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORPUS_DIR = Path(os.environ.get("SIPSCRIBE_SPEECH_CORPUS", "/usr/share/pocketsphinx/test/data"))
RATE = 16000


class CorpusMissing(RuntimeError):
    """The speech corpus is not installed."""


@dataclass(frozen=True, slots=True)
class Recording:
    name: str
    text: str
    audio: np.ndarray  # float32, 16 kHz mono

    @property
    def duration_s(self) -> float:
        return self.audio.size / RATE


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a recording was placed in a synthetic call."""

    channel: int
    start_s: float
    end_s: float
    text: str


def load_corpus(*, sets: tuple[str, ...] = ("librivox", "cards")) -> list[Recording]:
    """Every recording of the named sets with its reference text."""
    if not CORPUS_DIR.is_dir():
        raise CorpusMissing(
            f"speech corpus not found at {CORPUS_DIR} (apt-get install pocketsphinx-testdata)"
        )
    out: list[Recording] = []
    for name in sets:
        folder = CORPUS_DIR / name
        tfile = folder / ("transcription" if name == "librivox" else f"{name}.transcription")
        if not tfile.is_file():
            raise CorpusMissing(f"{tfile} missing")
        for line in tfile.read_text().splitlines():
            m = re.match(r"\s*<s>(.*)</s>\s*\((.+)\)\s*$", line)
            if not m:
                continue
            text, stem = m.group(1).strip(), m.group(2).strip()
            wav = folder / f"{stem}.wav"
            if wav.is_file():
                audio = trim_silence(read_wav(wav))
                out.append(Recording(stem, " ".join(text.split()), audio))
    if not out:
        raise CorpusMissing(f"no recordings found under {CORPUS_DIR}")
    return out


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono WAV")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        rate = w.getframerate()
    audio = data.astype(np.float32) / 32768.0
    if rate != RATE:
        from sipscribe.media.resample import resample

        audio = resample(audio, rate, RATE)
    return audio


def trim_silence(
    audio: np.ndarray, *, floor_db: float = -20.0, margin_s: float = 0.03
) -> np.ndarray:
    """Cut leading and trailing silence, so a placement says where the speech is.

    A 10 ms frame counts as speech when it is within ``floor_db`` of the speech level
    (the 90th-percentile frame): room noise and breaths before the first word do not.
    """
    frame = RATE // 100
    n = audio.size // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(np.square(audio[: n * frame].reshape(n, frame)), axis=1))
    loud = np.flatnonzero(rms >= np.percentile(rms, 90) * 10 ** (floor_db / 20))
    margin = int(margin_s * RATE)
    a = max(0, loud[0] * frame - margin)
    b = min(audio.size, (loud[-1] + 1) * frame + margin)
    return audio[a:b]


def build_conversation(
    recordings: list[Recording],
    *,
    gap_s: float = 1.0,
    lead_s: float = 0.5,
    channels: int = 2,
) -> tuple[list[np.ndarray], list[Placed]]:
    """Alternate recordings between channels like turns of a call, with pauses.

    Returns one array per channel (equal length) and where each turn was placed.
    """
    placed: list[Placed] = []
    pos = lead_s
    for i, rec in enumerate(recordings):
        ch = i % channels
        placed.append(Placed(ch, pos, pos + rec.duration_s, rec.text))
        pos += rec.duration_s + gap_s
    total = int((pos + lead_s) * RATE)
    tracks = [np.zeros(total, dtype=np.float32) for _ in range(channels)]
    for rec, p in zip(recordings, placed, strict=True):
        a = int(p.start_s * RATE)
        tracks[p.channel][a : a + rec.audio.size] += rec.audio
    return tracks, placed


def telephony(audio: np.ndarray, *, law: str = "ulaw") -> np.ndarray:
    """Simulate a G.711 phone channel: 8 kHz band limit and companding, back to 16 kHz."""
    from sipscribe.media.resample import resample

    narrow = resample(audio, RATE, 8000)
    pcm = (np.clip(narrow, -1, 1) * 32767).astype(np.int16)
    coded = _g711_roundtrip(pcm, law)
    return resample(coded.astype(np.float32) / 32768.0, 8000, RATE)


def _g711_roundtrip(pcm: np.ndarray, law: str) -> np.ndarray:
    """Compand and expand through FFmpeg's G.711 codecs (PyAV), as a phone line would."""
    import av

    name = "pcm_mulaw" if law == "ulaw" else "pcm_alaw"
    enc = av.CodecContext.create(name, "w")
    enc.sample_rate = 8000
    enc.layout = "mono"
    enc.format = "s16"
    enc.open()
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    coded = b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])
    dec = av.CodecContext.create(name, "r")
    dec.sample_rate = 8000
    dec.layout = "mono"
    out = [f.to_ndarray().reshape(-1) for f in dec.decode(av.Packet(coded))]
    return np.concatenate(out).astype(np.int16)[: pcm.size]
