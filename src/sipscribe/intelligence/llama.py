"""The embedded language model: llama.cpp (``llama-cpp-python``) in a low-priority process.

``LlamaEngine`` is the plain, synchronous model: load a GGUF file, answer chat requests,
constrained to a JSON schema through llama.cpp's grammar sampler when asked.
``LlamaProcessBackend`` is the ``LlmBackend`` the server uses: it runs one
``LlamaEngine`` in a child process and talks to it over a pipe.

Why a process and not a thread. Real-time transcription shares this machine's cores
with the summariser, and a summary must never delay an utterance. A child process
gives three things a thread cannot:

* priority for all of llama.cpp's threads: ``os.nice`` in the child before the model
  loads applies to the whole process, including the compute threads ggml starts later
  (on Linux a thread's nice value is its own, so lowering one Python thread would miss
  them); at nice 10 the kernel's scheduler gives a runnable ASR thread about nine
  times the CPU share of a summariser thread;
* no GIL contention: llama-cpp-python runs Python code for every generated token
  (sampling bookkeeping, stop checks); in the server's process that code would compete
  with the event loop that receives RTP;
* isolation: a crash or an out-of-memory kill inside llama.cpp ends the child, which
  the backend reports (``BackendUnavailable``) and restarts on the next request,
  instead of taking the SIP and RTP service down.

The cost is a pipe round trip per request (negligible next to seconds of generation)
and the model mapped into a second process (it is mmapped, ~1.1 GB, shared page cache).
The child is a fresh interpreter (``python -m sipscribe.intelligence.llama FD CONFIG``)
rather than a ``multiprocessing`` child, which would re-import the parent's main module
(an embedding script without a ``__main__`` guard would start itself again).

Protocol on the socket pair (``multiprocessing.connection`` framing): the parent sends
``("complete", id, request)`` or ``("stop",)``; the child answers ``("ready", info)``
once loaded, then ``("ok", id, completion)`` or ``("error", id, kind, message)`` per
request, in order. A reader thread in the parent routes answers to the waiting futures
by id, so a caller that gave up (cancelled, timed out) never leaves an answer for the
next one to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing.connection
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sipscribe.intelligence.llm import (
    BackendUnavailable,
    ChatCompletion,
    ChatRequest,
    ContextOverflow,
    LlmError,
)

log = logging.getLogger(__name__)

#: Tokens each chat message adds around its content (Qwen's <|im_start|>role\n … <|im_end|>).
MESSAGE_OVERHEAD_TOKENS = 6
START_TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class LlamaConfig:
    """How to load the model.

    ``threads`` generate (one token at a time: too little work per step to share, and
    two threads that must meet after every step crawl when another process holds one
    core: measured 3.5 tokens/s with two threads against 13 with one on a busy 2-core
    machine); ``batch_threads`` read the prompt (large matrix work that two threads do
    nearly twice as fast).
    """

    model_path: Path
    context_tokens: int = 4096
    threads: int = 1
    batch_threads: int = 2
    batch_tokens: int = 256
    nice: int = 10
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_path"] = str(self.model_path)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LlamaConfig:
        return cls(**{**data, "model_path": Path(data["model_path"])})


class LlamaEngine:
    """A loaded GGUF chat model. Not thread-safe: one request at a time."""

    def __init__(self, config: LlamaConfig) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendUnavailable(
                "the embedded language model needs llama-cpp-python "
                "(scripts/build-llama-wheel.sh builds and installs it)"
            ) from exc
        self._llama_cpp = llama_cpp
        self.config = config
        self.model_name = config.model_path.stem
        started = time.perf_counter()
        self._llm = llama_cpp.Llama(
            model_path=str(config.model_path),
            n_ctx=config.context_tokens,
            n_threads=config.threads,
            n_threads_batch=config.batch_threads,
            n_batch=config.batch_tokens,
            seed=config.seed,
            verbose=False,
        )
        self.load_seconds = time.perf_counter() - started
        self._grammars: dict[str, Any] = {}

    @property
    def context_tokens(self) -> int:
        return int(self._llm.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _grammar(self, schema: dict[str, Any] | None) -> Any:
        """The llama.cpp grammar for a JSON schema (generic JSON when None), cached."""
        key = json.dumps(schema, sort_keys=True) if schema is not None else ""
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

            try:
                if schema is None:
                    grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
                else:
                    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            except Exception as exc:
                raise LlmError(f"JSON schema cannot be turned into a grammar: {exc}") from None
            self._grammars[key] = grammar
        return grammar

    def complete(self, request: ChatRequest) -> ChatCompletion:
        prompt_tokens = sum(
            self.count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in request.messages
        )
        if prompt_tokens + request.max_tokens > self.context_tokens:
            raise ContextOverflow(
                f"prompt of about {prompt_tokens} tokens plus {request.max_tokens} to generate "
                f"exceed the context window of {self.context_tokens}"
            )
        grammar = None
        if request.json_schema is not None or request.json_object:
            grammar = self._grammar(request.json_schema)
        started = time.perf_counter()
        try:
            out = self._llm.create_chat_completion(
                messages=[m.to_dict() for m in request.messages],  # type: ignore[misc]
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=request.seed,
                grammar=grammar,
            )
        except ValueError as exc:
            if "context window" in str(exc):
                raise ContextOverflow(str(exc)) from None
            raise LlmError(f"llama.cpp failed: {exc}") from None
        choice = out["choices"][0]  # type: ignore[index]
        usage = out.get("usage") or {}  # type: ignore[union-attr]
        return ChatCompletion(
            text=choice["message"]["content"] or "",
            model=self.model_name,
            finish_reason=str(choice.get("finish_reason") or "stop"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=time.perf_counter() - started,
        )


# -- the child process --------------------------------------------------------------------


def _worker_main(conn: multiprocessing.connection.Connection, config: dict[str, Any]) -> None:
    """Child process: lower priority, load the model, answer requests until told to stop."""
    cfg = LlamaConfig.from_dict(config)
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    try:
        if cfg.nice:
            os.nice(cfg.nice)
        engine = LlamaEngine(cfg)
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(
        (
            "ready",
            {
                "model": engine.model_name,
                "context_tokens": engine.context_tokens,
                "load_seconds": engine.load_seconds,
                "nice": os.getpriority(os.PRIO_PROCESS, 0),
            },
        )
    )
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        _, request_id, payload = message
        try:
            completion = engine.complete(ChatRequest.from_dict(payload))
            conn.send(("ok", request_id, completion.to_dict()))
        except ContextOverflow as exc:
            conn.send(("error", request_id, "overflow", str(exc)))
        except Exception as exc:
            conn.send(("error", request_id, "error", f"{type(exc).__name__}: {exc}"))


def _exit_with_parent(parent: int, interval_s: float = 1.0) -> None:
    """End the worker when the process that started it is gone (killed, crashed): a
    generation in progress would otherwise run to its end for nobody."""
    while os.getppid() == parent:
        time.sleep(interval_s)
    os._exit(0)


class LlamaProcessBackend:
    """``LlmBackend`` running ``LlamaEngine`` in a child process at lowered priority.

    The child starts on first use (or ``start``) and again after it died. Requests are
    answered one at a time, in order; any event loop (and any number of loops over the
    backend's life) may await them.
    """

    def __init__(
        self,
        config: LlamaConfig,
        *,
        request_timeout_s: float | None = 600.0,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.model_name = config.model_path.stem
        self.context_tokens = config.context_tokens
        self.request_timeout_s = request_timeout_s
        self.start_timeout_s = start_timeout_s
        self.info: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._reader: threading.Thread | None = None
        self._pending: dict[int, Future[ChatCompletion]] = {}
        self._lock = threading.Lock()
        self._next_id = 0
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-send")
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start_sync(self) -> None:
        """Start the child and wait until its model is loaded (blocking)."""
        with self._lock:
            if self._closed:
                raise BackendUnavailable("the llama backend is closed")
            if self._process is not None and self._process.poll() is None:
                return
            self._spawn()

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._sender, self.start_sync)

    def _spawn(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        fd = child_sock.fileno()
        command = [
            sys.executable,
            "-m",
            "sipscribe.intelligence.llama",
            str(fd),
            json.dumps(self.config.to_dict()),
        ]
        try:
            process = subprocess.Popen(command, pass_fds=(fd,), stdin=subprocess.DEVNULL)
        finally:
            child_sock.close()
        parent = multiprocessing.connection.Connection(parent_sock.detach())
        try:
            ready = parent.poll(self.start_timeout_s)
            message = parent.recv() if ready else None
        except (EOFError, OSError):
            message = ("failed", f"it exited with code {process.wait(5)}")
        if message is None or message[0] != "ready":
            parent.close()
            if process.poll() is None:
                process.kill()
            process.wait(5)
            reason = (
                message[1]
                if message is not None
                else f"it did not load {self.config.model_path.name} "
                f"within {self.start_timeout_s:g} s"
            )
            raise BackendUnavailable(f"the llama worker could not start: {reason}")
        self.info = message[1]
        log.info("llama worker ready", extra={"pid": process.pid, **self.info})
        self._process, self._conn = process, parent
        self._reader = threading.Thread(
            target=self._read, args=(parent, process), name="llama-reader", daemon=True
        )
        self._reader.start()

    def _read(
        self,
        conn: multiprocessing.connection.Connection,
        process: subprocess.Popen[bytes],
    ) -> None:
        """Route the child's answers to their futures; fail them all if it dies."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind, request_id = message[0], message[1]
            with self._lock:
                future = self._pending.pop(request_id, None)
            if future is None or future.done():
                continue  # its caller gave up
            if kind == "ok":
                future.set_result(ChatCompletion.from_dict(message[2]))
            elif message[2] == "overflow":
                future.set_exception(ContextOverflow(message[3]))
            else:
                future.set_exception(LlmError(f"llama worker: {message[3]}"))
        conn.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(1)
        with self._lock:
            pending, self._pending = self._pending, {}
            if self._process is process:
                self._process, self._conn = None, None
        reason = BackendUnavailable(f"the llama worker exited (exit code {process.poll()})")
        for future in pending.values():
            if not future.done():
                future.set_exception(reason)

    def _submit(self, request: ChatRequest) -> Future[ChatCompletion]:
        """Blocking: make sure the child runs, then send one request (sender thread only)."""
        self.start_sync()
        future: Future[ChatCompletion] = Future()
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            self._pending[request_id] = future
            conn = self._conn
        if conn is None:
            raise BackendUnavailable("the llama worker is not running")
        try:
            conn.send(("complete", request_id, request.to_dict()))
        except (OSError, ValueError) as exc:
            with self._lock:
                self._pending.pop(request_id, None)
            raise BackendUnavailable(f"the llama worker cannot be reached: {exc}") from None
        return future

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        loop = asyncio.get_running_loop()
        future = await loop.run_in_executor(self._sender, self._submit, request)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future, loop=loop), timeout=self.request_timeout_s
            )
        except TimeoutError:
            # A generation that long is stuck: end the child; the next request restarts it.
            self._kill()
            raise LlmError(
                f"the llama worker did not answer within {self.request_timeout_s:g} s"
            ) from None

    def _kill(self) -> None:
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def close_sync(self, timeout: float = 10.0) -> None:
        """Stop the child (politely, then by force) and the helper threads."""
        with self._lock:
            self._closed = True
            process, conn = self._process, self._conn
        if process is not None and conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._reader is not None:
            self._reader.join(timeout)
        self._sender.shutdown(wait=False)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close_sync)


if __name__ == "__main__":
    # The worker: ``python -m sipscribe.intelligence.llama FD CONFIG_JSON``.
    _worker_main(multiprocessing.connection.Connection(int(sys.argv[1])), json.loads(sys.argv[2]))
