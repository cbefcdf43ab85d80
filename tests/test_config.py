from __future__ import annotations

from pathlib import Path

import pytest

from sipscribe.config import ConfigError, load_settings


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("SIPSCRIBE_HTTP_PORT", "SIPSCRIBE_DATA_DIR", "SIPSCRIBE_DATABASE_URL"):
        monkeypatch.delenv(k, raising=False)
    s = load_settings()
    assert (s.http_host, s.http_port, s.sip_host, s.sip_port) == (
        "127.0.0.1",
        8080,
        "0.0.0.0",
        5060,
    )
    assert (s.rtp_port_min, s.rtp_port_max, s.auto_start) == (16384, 32767, True)
    assert s.data_dir == Path("data")
    assert s.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert s.resolved_database_url.endswith("data/sipscribe.db")
    assert s.asr_model == "tiny.en" and s.vad_silence_ms == 400


def test_toml_file_flat_and_sections(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('http_port = 9000\n[asr]\nmodel = "base"\n[vad]\nsilence_ms = 600\n')
    s = load_settings(f)
    assert (s.http_port, s.asr_model, s.vad_silence_ms) == (9000, "base", 600)


def test_environment_wins_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "s.toml"
    f.write_text("http_port = 9000\nauto_start = true\n")
    monkeypatch.setenv("SIPSCRIBE_HTTP_PORT", "9100")
    monkeypatch.setenv("SIPSCRIBE_AUTO_START", "false")
    s = load_settings(f)
    assert (s.http_port, s.auto_start) == (9100, False)


def test_overrides_win_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPSCRIBE_HTTP_PORT", "9100")
    assert load_settings(http_port=9200).http_port == 9200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http_port = 70000", "http_port"),
        ("rtp_port_min = 20000\nrtp_port_max = 10000", "must be above rtp_port_min"),
        ("http_port = ", "not valid TOML"),
    ],
)
def test_bad_values_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(f)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings("/nonexistent/sipscribe.toml")
