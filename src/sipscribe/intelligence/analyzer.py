"""The call analyzer: a redacted transcript in, headline, summary, items and moods out.

``Analyzer`` implements the API's ``SummaryEngine`` Protocol
(``async summarize(transcript, instructions) -> dict``), so the composition root can put
it in ``AppServices.summary_engine`` in place of the extractive fallback. It works with
any ``LlmBackend`` (the embedded llama.cpp model or an OpenAI-compatible server).

Theory of operation.

1. *Turns.* Segments become speaker turns ("Agent: …", "Customer: …"), in time order.
   The transcript is the redacted one: masked digits stay masked ("####").
2. *Chunks.* Turns are packed into chunks that fit the model's context beside the
   prompt, the summary instructions and the reply (``chunking.py``). A 5-minute call is
   one chunk at the default 4,096-token context; a 20-minute call is two or three.
3. *Map.* Each chunk is analysed with the reply constrained to ``MODEL_SCHEMA``
   (grammar-constrained decoding), so it always parses; the reply is still checked
   (``Analysis.parse``) because an OpenAI-compatible server may ignore the format.
4. *Numbers.* Every number in the reply must have been said in the call
   (``numbercheck.py``). If one was not, the chunk is asked again with the offending
   numbers named (``max_repairs`` times); numbers still invented after that are removed
   with the sentence or item that holds them, and each removal is listed in
   ``metadata.removed`` and mentioned in the note.
5. *Reduce.* With several chunks, action items, answers and small talk are merged
   without repeats, moods are merged by rule, and the model writes one headline,
   summary and note from the chunks' (number-checked) ones, checked again the same way.

A context overflow (the estimate of step 2 was short, or the reply ran out of tokens)
halves the chunk budget and starts over, at most ``MAX_RECHUNKS`` times.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sipscribe.intelligence.chunking import (
    Turn,
    chunk_turns,
    estimate_tokens,
    merge_actions,
    merge_answers,
    merge_sentiment,
    merge_small_talk,
    render,
    turns_from_transcript,
)
from sipscribe.intelligence.llm import (
    ChatMessage,
    ChatRequest,
    ContextOverflow,
    LlmBackend,
    LlmError,
    LlmSettings,
)
from sipscribe.intelligence.numbercheck import (
    NumberMention,
    TranscriptNumbers,
    remove_sentences_with,
    split_sentences,
    unsupported_numbers,
)
from sipscribe.intelligence.schema import (
    MAX_HEADLINE_CHARS,
    MAX_NOTE_CHARS,
    MAX_SUMMARY_CHARS,
    MERGE_SCHEMA,
    MODEL_SCHEMA,
    Analysis,
    AnalysisFormatError,
    MergedGist,
)

log = logging.getLogger(__name__)

ENGINE_NAME = "llm"
MAX_RECHUNKS = 3
#: Tokens kept free in each prompt for the repair request and chat formatting.
PROMPT_RESERVE_TOKENS = 160

DEFAULT_INSTRUCTIONS = (
    "Write three to five sentences: what the customer wanted, what the agent did or "
    "promised, and how the call ended. Name every amount, price, date, order or reference "
    "number, size and product that was said."
)

SYSTEM_PROMPT = """\
You analyse a recorded phone call between a company's agent and a customer and fill in \
a JSON form about it.
Rules:
- Use only what the transcript says. Do not guess.
- Copy every number (amounts, dates, order and reference numbers, quantities) exactly \
as it appears in the transcript. Never calculate, round or invent a number or a date.
- Characters shown as # were masked for privacy; never write them out.
Fields:
- callHeadline: one short line: why the customer called and the outcome.
- summary: follow the summary instructions given after the transcript.
- actionItems: each task someone promised to do after the call. owner: "agent" or \
"customer", whoever will do it. dueDate: the deadline in the words the call used, or \
null if the call gave none. An empty list if nothing was promised.
- smartAnswers: each question the customer asked (a sentence ending in "?"), with the \
answer the agent gave. Only questions that were really asked.
- smallTalkItems: personal chat not about the business of the call (weather, sport, \
family, holidays), each with a short topic and a description. An empty list if there \
was none.
- sentiment: the mood of the agent and of the customer: positive, neutral, negative or \
mixed.
- note: one line for the customer's record: the outcome and anything still open."""

MERGE_PROMPT = """\
You combine notes about consecutive parts of one recorded phone call between a \
company's agent and a customer into one record, as a JSON form.
Rules:
- Use only what the notes say. Copy every number exactly as it appears in them; never \
calculate, round or invent a number or a date.
Fields:
- callHeadline: one short line: why the customer called and the outcome of the call.
- summary: follow the summary instructions given after the notes, for the whole call.
- note: one line for the customer's record: the outcome and anything still open."""

#: A worked example, sent as a previous turn of the chat: small models follow a shown
#: answer far better than a described one. It is about a different business than any
#: real call, so its content is not copied, and it stays identical between requests, so
#: llama.cpp evaluates it once and reuses it (prompt prefix cache).
EXAMPLE_TRANSCRIPT = """\
Agent: City Library, this is Ana.
Customer: Hi, I can't renew my book online, it says there's an error. My card is L-2207.
Agent: Let me look. The book, The Silent Harbor, has a hold from another reader, so it \
can't be renewed. It's due on Monday, and the late fee is 50 cents a day.
Customer: Oh no, I haven't finished it. Can I keep it longer if I pay?
Agent: I'm afraid not, but I can put you on the waiting list for it after the return.
Customer: Okay, please do. I'll bring it back on Monday. Lovely weather today, isn't it?
Agent: It is! Perfect for reading in the park. I'll add you to the list now."""

EXAMPLE_ANSWER = """\
{"callHeadline": "Customer could not renew a book with a hold; put on the waiting list", \
"summary": "The customer (card L-2207) could not renew The Silent Harbor online. The \
agent explained that another reader has a hold on it, so it is due on Monday with a late \
fee of 50 cents a day, and added the customer to the waiting list.", "actionItems": \
[{"text": "Add the customer to the waiting list for The Silent Harbor", "owner": "agent", \
"dueDate": null}, {"text": "Return the book", "owner": "customer", "dueDate": "Monday"}], \
"smartAnswers": [{"question": "Can I keep it longer if I pay?", "answer": "No, but the \
customer can join the waiting list for it."}], "smallTalkItems": [{"topic": "Weather", \
"description": "They agreed the weather was lovely, good for reading in the park."}], \
"sentiment": {"agent": "positive", "customer": "neutral"}, "note": "Card L-2207: The \
Silent Harbor due Monday; on the waiting list."}"""

NEW_CALL = (
    "Now a different call. Nothing from the library call applies to it: use only this transcript."
)

EXCERPT_HINT = (
    "This transcript is an excerpt of a longer call; analyse only what this excerpt says."
)


@dataclass(frozen=True, slots=True)
class AnalyzerOptions:
    """Tuning; the defaults suit the embedded 1.5B model at a 4,096-token context."""

    max_output_tokens: int = 768
    merge_output_tokens: int = 384
    chunk_tokens: int | None = None  # None: what fits the backend's context
    max_repairs: int = 1
    temperature: float = 0.0
    default_instructions: str = DEFAULT_INSTRUCTIONS


@dataclass(frozen=True, slots=True)
class Violation:
    """Numbers one field states that the call never said."""

    field: str  # "summary", "actionItems", …
    index: int | None  # the item, for list fields
    text: str  # the whole field (or item) as written
    mentions: tuple[NumberMention, ...]

    @property
    def numbers(self) -> str:
        return ", ".join(m.text for m in self.mentions)


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What ``Analyzer.analyze`` found, with how it got there."""

    analysis: Analysis
    model: str
    chunks: int
    llm_calls: int
    repairs: int
    removed: tuple[dict[str, str], ...]
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    instructions_applied: bool

    def to_dict(self) -> dict[str, Any]:
        """The document of ``schema.RESULT_SCHEMA``."""
        return {
            "engine": ENGINE_NAME,
            "model": self.model,
            **self.analysis.to_dict(),
            "instructions_applied": self.instructions_applied,
            "metadata": {
                "chunks": self.chunks,
                "llm_calls": self.llm_calls,
                "repairs": self.repairs,
                "removed": [dict(r) for r in self.removed],
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "seconds": round(self.seconds, 3),
            },
        }


@dataclass
class _Run:
    """Counters for one ``analyze`` call."""

    llm_calls: int = 0
    model: str = ""  # as the backend named it in its last reply
    repairs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    removed: list[dict[str, str]] = field(default_factory=list)


class _Truncated(Exception):
    """The reply hit ``max_tokens`` before its JSON was complete."""


# -- pure parts: prompts, violations, repair ---------------------------------------------


def analysis_messages(
    turns: Sequence[Turn],
    instructions: str,
    *,
    excerpt: bool = False,
    avoid: Sequence[str] = (),
) -> list[ChatMessage]:
    """The chat for one chunk. The fixed system prompt comes first and the transcript
    next, so llama.cpp reuses their evaluated prefix when the chunk is asked again."""
    parts = [f"{NEW_CALL}\n\nTranscript:\n{render(turns)}"]
    if excerpt:
        parts.append(EXCERPT_HINT)
    parts.append(f"Summary instructions: {instructions}")
    if avoid:
        parts.append(repair_note(avoid))
    return [
        ChatMessage("system", SYSTEM_PROMPT),
        ChatMessage(
            "user",
            f"Transcript:\n{EXAMPLE_TRANSCRIPT}\n\nSummary instructions: {DEFAULT_INSTRUCTIONS}",
        ),
        ChatMessage("assistant", EXAMPLE_ANSWER),
        ChatMessage("user", "\n\n".join(parts)),
    ]


def merge_messages(
    partials: Sequence[Analysis], instructions: str, *, avoid: Sequence[str] = ()
) -> list[ChatMessage]:
    notes = "\n".join(
        f"- Headline: {p.headline}\n  Summary: {p.summary}\n  Note: {p.note}" for p in partials
    )
    parts = [f"Notes on the parts of the call, in order:\n{notes}"]
    parts.append(f"Summary instructions: {instructions}")
    if avoid:
        parts.append(repair_note(avoid))
    return [ChatMessage("system", MERGE_PROMPT), ChatMessage("user", "\n\n".join(parts))]


def repair_note(numbers: Sequence[str]) -> str:
    listed = ", ".join(dict.fromkeys(numbers))
    return (
        f"Important: an earlier answer stated numbers that were never said in this call: "
        f"{listed}. Do not write them. Use only numbers that were said, exactly as said; "
        f"leave out what you do not know."
    )


def find_violations(analysis: Analysis, said: TranscriptNumbers) -> list[Violation]:
    """Every field and item that states a number the call never said."""
    found: list[Violation] = []

    def check(field_name: str, index: int | None, texts: Sequence[str | None]) -> None:
        mentions: list[NumberMention] = []
        for text in texts:
            if text:
                mentions.extend(unsupported_numbers(text, said))
        if mentions:
            whole = " / ".join(t for t in texts if t)
            found.append(Violation(field_name, index, whole, tuple(mentions)))

    check("callHeadline", None, [analysis.headline])
    check("summary", None, [analysis.summary])
    for i, a in enumerate(analysis.action_items):
        check("actionItems", i, [a.text, a.due_date])
    for i, q in enumerate(analysis.smart_answers):
        check("smartAnswers", i, [q.question, q.answer])
    for i, s in enumerate(analysis.small_talk):
        check("smallTalkItems", i, [s.topic, s.description])
    check("note", None, [analysis.note])
    return found


REMOVAL_NOTE = (
    "Some statements were removed because they gave numbers that were not said in the call."
)


def strip_violations(
    analysis: Analysis, violations: Sequence[Violation], said: TranscriptNumbers
) -> tuple[Analysis, list[dict[str, str]]]:
    """Remove each offending sentence (text fields) or item (lists); say what went."""
    removed: list[dict[str, str]] = []
    drop: dict[str, set[int]] = {
        "actionItems": set(),
        "smartAnswers": set(),
        "smallTalkItems": set(),
    }
    texts = {"callHeadline": analysis.headline, "summary": analysis.summary, "note": analysis.note}
    for v in violations:
        if v.index is not None:
            drop[v.field].add(v.index)
            removed.append({"field": f"{v.field}[{v.index}]", "text": v.text, "numbers": v.numbers})
            continue
        text = texts[v.field]
        kept, dropped = remove_sentences_with(text, unsupported_numbers(text, said))
        texts[v.field] = kept
        for sentence in dropped:
            removed.append({"field": v.field, "text": sentence, "numbers": v.numbers})
    headline = texts["callHeadline"]
    if not headline and texts["summary"]:
        spans = split_sentences(texts["summary"])
        first = texts["summary"][spans[0][0] : spans[0][1]].strip() if spans else ""
        headline = _clip(first, MAX_HEADLINE_CHARS)
    note = texts["note"]
    if removed:
        note = f"{note} {REMOVAL_NOTE}".strip()
    cleaned = replace(
        analysis,
        headline=headline,
        summary=texts["summary"],
        note=note,
        action_items=tuple(
            a for i, a in enumerate(analysis.action_items) if i not in drop["actionItems"]
        ),
        smart_answers=tuple(
            a for i, a in enumerate(analysis.smart_answers) if i not in drop["smartAnswers"]
        ),
        small_talk=tuple(
            s for i, s in enumerate(analysis.small_talk) if i not in drop["smallTalkItems"]
        ),
    )
    return cleaned, removed


def finish_cut(text: str, limit: int) -> str:
    """A text the grammar cut at ``limit`` characters, without its unfinished last
    sentence (kept whole when it is the only one)."""
    if len(text) < limit - 1 or text.rstrip().endswith((".", "!", "?")):
        return text
    spans = split_sentences(text)
    complete = [text[a:b].strip() for a, b in spans if text[a:b].rstrip().endswith((".", "!", "?"))]
    return " ".join(complete) if complete else text


def finish_cuts(analysis: Analysis) -> Analysis:
    return replace(
        analysis,
        headline=finish_cut(analysis.headline, MAX_HEADLINE_CHARS),
        summary=finish_cut(analysis.summary, MAX_SUMMARY_CHARS),
        note=finish_cut(analysis.note, MAX_NOTE_CHARS),
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def empty_analysis() -> Analysis:
    return Analysis(
        headline="",
        summary="",
        note="The call has no transcribed speech, so there is nothing to summarise.",
    )


T = TypeVar("T")


# -- the analyzer ------------------------------------------------------------------------


class Analyzer:
    """``SummaryEngine`` over a language model; see the module docstring."""

    name = ENGINE_NAME

    def __init__(self, backend: LlmBackend, options: AnalyzerOptions | None = None) -> None:
        self.backend = backend
        self.options = options or AnalyzerOptions()

    @classmethod
    def from_settings(cls, settings: Any, backend: LlmBackend | None = None) -> Analyzer:
        """An analyzer over ``backend`` or the one the settings name (``llm_*``)."""
        from sipscribe.intelligence.llm import build_backend

        cfg = LlmSettings.of(settings)
        if backend is None:
            backend = build_backend(settings)
        if backend is None:
            raise ValueError("llm_backend is 'none': there is no language model to analyse with")
        return cls(
            backend,
            AnalyzerOptions(max_output_tokens=cfg.max_output_tokens, chunk_tokens=cfg.chunk_tokens),
        )

    async def summarize(
        self, transcript: list[dict[str, Any]], instructions: str | None
    ) -> dict[str, Any]:
        """``SummaryEngine``: the ``RESULT_SCHEMA`` document for a transcript."""
        return (await self.analyze(transcript, instructions)).to_dict()

    async def aclose(self) -> None:
        await self.backend.aclose()

    def chunk_budget(self, instructions: str) -> int:
        """Transcript tokens one chunk may hold beside the prompt and the reply."""
        if self.options.chunk_tokens is not None:
            return self.options.chunk_tokens
        fixed = estimate_tokens(SYSTEM_PROMPT) + estimate_tokens(instructions)
        fixed += estimate_tokens(EXAMPLE_TRANSCRIPT) + estimate_tokens(EXAMPLE_ANSWER)
        fixed += estimate_tokens(DEFAULT_INSTRUCTIONS) + estimate_tokens(NEW_CALL)
        fixed += estimate_tokens(EXCERPT_HINT) + PROMPT_RESERVE_TOKENS
        return self.backend.context_tokens - fixed - self.options.max_output_tokens

    async def analyze(
        self, transcript: list[dict[str, Any]], instructions: str | None
    ) -> AnalysisResult:
        started = time.perf_counter()
        wanted = instructions.strip() if instructions and instructions.strip() else None
        instructions_text = wanted or self.options.default_instructions
        turns = turns_from_transcript(transcript)
        run = _Run()
        if not turns:
            analysis = empty_analysis()
            chunk_count = 0
        else:
            said = TranscriptNumbers.of(t.text for t in turns)
            budget = self.chunk_budget(instructions_text)
            for attempt in range(MAX_RECHUNKS + 1):
                chunks = chunk_turns(turns, budget)
                run = _Run()
                try:
                    analysis = await self._analyze_chunks(chunks, instructions_text, said, run)
                    break
                except (ContextOverflow, _Truncated) as exc:
                    if attempt == MAX_RECHUNKS:
                        raise LlmError(
                            f"the call does not fit the model even in chunks of {budget} "
                            f"tokens: {exc}"
                        ) from None
                    log.info("re-chunking at %d tokens: %s", budget // 2, exc)
                    budget //= 2
            chunk_count = len(chunks)
        return AnalysisResult(
            analysis=analysis.with_ids(),
            model=run.model or self.backend.model_name,
            chunks=chunk_count,
            llm_calls=run.llm_calls,
            repairs=run.repairs,
            removed=tuple(run.removed),
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            seconds=time.perf_counter() - started,
            instructions_applied=wanted is not None,
        )

    async def _analyze_chunks(
        self,
        chunks: list[list[Turn]],
        instructions: str,
        said: TranscriptNumbers,
        run: _Run,
    ) -> Analysis:
        excerpt = len(chunks) > 1
        partials: list[Analysis] = []
        for chunk in chunks:
            partials.append(
                await self._checked(
                    lambda avoid, chunk=chunk: analysis_messages(
                        chunk, instructions, excerpt=excerpt, avoid=avoid
                    ),
                    MODEL_SCHEMA,
                    Analysis.parse,
                    self.options.max_output_tokens,
                    said,
                    run,
                )
            )
        if len(partials) == 1:
            return partials[0]
        gist = await self._checked(
            lambda avoid: merge_messages(partials, instructions, avoid=avoid),
            MERGE_SCHEMA,
            lambda data: _gist_analysis(MergedGist.parse(data)),
            self.options.merge_output_tokens,
            said,
            run,
        )
        return replace(
            gist,
            action_items=tuple(merge_actions(p.action_items for p in partials)),
            smart_answers=tuple(merge_answers(p.smart_answers for p in partials)),
            small_talk=tuple(merge_small_talk(p.small_talk for p in partials)),
            sentiment=merge_sentiment([p.sentiment for p in partials]),
        )

    async def _checked(
        self,
        build: Callable[[Sequence[str]], list[ChatMessage]],
        schema: dict[str, Any],
        parse: Callable[[Any], Analysis],
        max_tokens: int,
        said: TranscriptNumbers,
        run: _Run,
    ) -> Analysis:
        """Ask, parse, check numbers; re-ask naming invented numbers; strip what remains."""
        avoid: list[str] = []
        analysis = finish_cuts(await self._ask(build(avoid), schema, parse, max_tokens, run))
        violations = find_violations(analysis, said)
        for _ in range(self.options.max_repairs):
            if not violations:
                break
            run.repairs += 1
            avoid.extend(m.text for v in violations for m in v.mentions)
            log.info("re-asking without invented numbers: %s", ", ".join(avoid))
            analysis = finish_cuts(await self._ask(build(avoid), schema, parse, max_tokens, run))
            violations = find_violations(analysis, said)
        if violations:
            analysis, removed = strip_violations(analysis, violations, said)
            run.removed.extend(removed)
        return analysis

    async def _ask(
        self,
        messages: list[ChatMessage],
        schema: dict[str, Any],
        parse: Callable[[Any], T],
        max_tokens: int,
        run: _Run,
    ) -> T:
        """One constrained completion, parsed; one corrective retry for a malformed reply."""
        problem = ""
        for attempt in range(2):
            chat = list(messages)
            if attempt:
                chat.append(
                    ChatMessage(
                        "user",
                        f"Your reply could not be used ({problem}). Answer again with only "
                        f"the JSON object the form asks for.",
                    )
                )
            request = ChatRequest(
                messages=tuple(chat),
                max_tokens=max_tokens,
                temperature=self.options.temperature,
                json_schema=schema,
            )
            completion = await self.backend.complete(request)
            run.llm_calls += 1
            run.model = completion.model
            run.prompt_tokens += completion.prompt_tokens
            run.completion_tokens += completion.completion_tokens
            try:
                return parse(json.loads(completion.text))
            except json.JSONDecodeError as exc:
                if completion.finish_reason == "length":
                    raise _Truncated(
                        f"the reply ran past {max_tokens} tokens before its JSON ended"
                    ) from None
                problem = f"not JSON: {exc.msg} at character {exc.pos}"
            except AnalysisFormatError as exc:
                problem = str(exc)
        raise LlmError(f"the model's reply is not a usable analysis: {problem}")


def _gist_analysis(gist: MergedGist) -> Analysis:
    return Analysis(headline=gist.headline, summary=gist.summary, note=gist.note)
