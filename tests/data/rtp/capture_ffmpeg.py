"""Regenerate the FFmpeg RTP captures in this folder (not run by the tests).

    .venv/bin/python tests/data/rtp/capture_ffmpeg.py

FFmpeg's RTP muxer (through PyAV) sends 1.5 s of a LibriVox clip from Debian's
pocketsphinx-testdata, encoded as PCMU/8000 and as opus/48000/2, to a UDP socket on
127.0.0.1; every datagram that arrives on the RTP port and the RTCP port (RTP + 1) is written
in arrival order as one line ``rtp <hex>`` or ``rtcp <hex>``. These are packets from an
implementation independent of ours: the tests parse them and write them back byte for byte.
"""

from __future__ import annotations

import socket
import threading
import wave
from pathlib import Path

import av
import numpy as np
import soxr

CLIP = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
HERE = Path(__file__).parent


def capture(
    codec: str, rate: int, pcm: np.ndarray, **codec_options: str
) -> list[tuple[str, bytes]]:
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    port = rtp.getsockname()[1]
    rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp.bind(("127.0.0.1", port + 1))
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def receive(sock: socket.socket, kind: str) -> None:
        sock.settimeout(0.5)
        while True:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                return
            with lock:
                got.append((kind, data))

    threads = [
        threading.Thread(target=receive, args=(rtp, "rtp")),
        threading.Thread(target=receive, args=(rtcp, "rtcp")),
    ]
    for t in threads:
        t.start()
    with av.open(f"rtp://127.0.0.1:{port}", "w", format="rtp") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if codec_options:
            stream.codec_context.options = codec_options
        frame = rate // 50
        for i in range(0, len(pcm) - frame + 1, frame):
            f = av.AudioFrame.from_ndarray(
                pcm[i : i + frame].reshape(1, -1), format="s16", layout="mono"
            )
            f.sample_rate = rate
            f.pts = i
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    for t in threads:
        t.join()
    rtp.close()
    rtcp.close()
    return got


def save(name: str, datagrams: list[tuple[str, bytes]]) -> None:
    lines = [f"{kind} {data.hex()}" for kind, data in datagrams]
    (HERE / name).write_text("\n".join(lines) + "\n")


def main() -> None:
    with wave.open(CLIP) as w:
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)[: 16000 * 3 // 2]
    save("ffmpeg-pcmu.txt", capture("pcm_mulaw", 8000, soxr.resample(speech, 16000, 8000)))
    save(
        "ffmpeg-opus.txt",
        capture("libopus", 48000, soxr.resample(speech, 16000, 48000), b="24000"),
    )


if __name__ == "__main__":
    main()
