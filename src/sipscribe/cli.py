"""The ``sipscribe`` command: ``serve``, ``transcribe``, ``keys``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sipscribe import __version__
from sipscribe.config import ConfigError, Settings, load_settings

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_settings(args.config)
        return int(args.func(args, settings) or 0)
    except (CliError, ConfigError) as exc:
        print(f"sipscribe: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sipscribe", description=__doc__)
    p.add_argument("--version", action="version", version=f"sipscribe {__version__}")
    p.add_argument("--config", type=Path, help="TOML settings file (env SIPSCRIBE_* wins)")
    sub = p.add_subparsers(dest="command")

    t = sub.add_parser("transcribe", help="transcribe a call recording, one channel per party")
    t.add_argument("file", type=Path)
    t.add_argument("--format", "-f", choices=("json", "text", "vtt", "srt"), default="json")
    t.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    t.add_argument("--roles", help="comma-separated role per channel, e.g. agent,customer")
    t.add_argument("--words", action="store_true", help="include word timings in JSON")
    t.add_argument("--model", help="tiny.en (default), base, a model directory or a hub name")
    t.add_argument("--language", help="spoken language (default from settings: en)")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_transcribe)

    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="create a key; prints the secret alone on stdout")
    kc.add_argument("--tenant", required=True)
    kc.add_argument("--scopes", required=True, help="comma-separated, e.g. calls.read,admin")
    kc.add_argument("--name", default="")
    kc.set_defaults(func=_cmd_keys_create)
    kl = ksub.add_parser("list", help="list keys (never their secrets)")
    kl.add_argument("--tenant")
    kl.set_defaults(func=_cmd_keys_list)
    kr = ksub.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("key_id")
    kr.set_defaults(func=_cmd_keys_revoke)

    e = sub.add_parser("export", help="export utterances of a time interval to a file")
    from sipscribe import export_cli

    export_cli.add_arguments(e)
    e.set_defaults(func=_cmd_export)

    s = sub.add_parser("serve", help="run the SIPREC recorder, RTP, HTTP API and workers")
    s.add_argument("--http-port", type=int)
    s.add_argument("--sip-port", type=int)
    s.set_defaults(func=_cmd_serve)
    return p


def _parse_roles(text: str | None) -> list[Any] | None:
    if not text:
        return None
    roles = [r.strip().lower() for r in text.split(",")]
    bad = [r for r in roles if r not in ("agent", "customer")]
    if bad:
        raise CliError(f"--roles: unknown role {bad[0]!r}; use agent and customer")
    return roles


def _cmd_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    from sipscribe.asr.base import AsrError
    from sipscribe.delivery.formats import render
    from sipscribe.media.audiofile import AudioFileError, probe
    from sipscribe.pipeline.endpointer import EndpointerConfig
    from sipscribe.pipeline.filejob import transcribe_file

    roles = _parse_roles(args.roles)
    if args.model:
        settings = settings.model_copy(update={"asr_model": args.model})
    try:
        info = probe(args.file)
        if roles is not None and len(roles) != info.channels:
            raise CliError(
                f"--roles names {len(roles)} channel(s) but {args.file} has {info.channels}"
            )
        from sipscribe.asr.whisper import WhisperEngine

        engine = WhisperEngine.from_settings(settings)
        show = not args.quiet and (info.duration_s is None or info.duration_s > 5)
        with _Progress(show) as progress:
            result = transcribe_file(
                args.file,
                engine,
                roles=roles,
                language=args.language or settings.asr_language,
                config=EndpointerConfig.from_settings(settings),
                progress=progress.update,
            )
    except AudioFileError as exc:
        raise CliError(str(exc)) from exc
    except AsrError as exc:
        raise CliError(str(exc)) from exc
    text = render(result.utterances, args.format, include_words=args.words)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


class _Progress:
    """Two-phase rich progress bar on stderr (decode+VAD, then recognition)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self._enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def update(self, phase: str, done: float, total: float | None) -> None:
        if self._bar is None:
            return
        if phase not in self._tasks:
            label = "decoding + VAD" if phase == "decode" else "recognising"
            self._tasks[phase] = self._bar.add_task(label, total=total)
        self._bar.update(self._tasks[phase], completed=done, total=total)


def _cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from sipscribe import keys_cli

    scopes = [x.strip() for x in args.scopes.split(",") if x.strip()]
    return keys_cli.create(settings, args.tenant, scopes, args.name)


def _cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    from sipscribe import keys_cli

    return keys_cli.list_keys(settings, tenant=args.tenant)


def _cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from sipscribe import keys_cli

    return keys_cli.revoke(settings, args.key_id)


def _cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from sipscribe import export_cli

    return export_cli.run(settings, args)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    overrides = {"http_port": args.http_port, "sip_port": args.sip_port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    from sipscribe.app import run

    return run(settings)
