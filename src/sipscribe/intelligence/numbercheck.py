"""No invented numbers: every number a summary states must have been said in the call.

A language model asked to summarise a call will sometimes round an amount, compute a
date, or make up an order number. In a contact centre those are the worst errors a
summary can make, so the analyzer checks every number in its output against the
transcript and repairs what fails (see ``analyzer.py``). These are the pure functions
behind that check.

Theory of operation. The *transcript side* is generous: it collects every value the
words could mean. Digit tokens count whole and by parts ("$1,299.99" → 1299.99, 1299,
99; "3:30" → 3, 30); runs of number words count as a cardinal ("one hundred and
twenty" → 120), as their groups ("twenty five" "hundred" …), as the groups written one
after the other ("twenty twenty four" → 2024, "five eight two one three" → 58213) and,
for two groups, as a price ("two fifty" → 2.5); ordinals count too ("third", "3rd" → 3),
"point" makes decimals ("four point five" → 4.5), and a few words imply a count
("twice", "both", "a couple", "a dozen"). The *output side* is strict: each
digit token ("$45.50", "15th", "10%") and each run of number words is one mention with
one value, and it is supported only if that value is among the transcript's, or if its
spelled-out form (``sipscribe.asr.evaluation.normalize_text``) occurs word for word in
the spelled-out transcript. Two things are not checked on the output side, on purpose:
a lone "one" (mostly a pronoun: "the one I ordered") and ordinal words ("a second
charge"), which say "how many" far less often than they say something else.

Masked digits ("####", from redaction) are not numbers on either side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sipscribe.asr.evaluation import normalize_text

_UNITS: dict[str, int] = {
    "zero": 0,
    "oh": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS: dict[str, int] = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_ORDINALS: dict[str, int] = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}
_SCALES: dict[str, int] = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
# Words that say a count without a number word; transcript side only ("charged twice"
# supports "two charges").
_IMPLIED: dict[str, str] = {
    "once": "1",
    "twice": "2",
    "both": "2",
    "couple": "2",
    "pair": "2",
    "thrice": "3",
    "dozen": "12",
    "half": "0.5",
}
# Words that may sit inside a number word run without ending it.
_JOINERS = frozenset({"and", "a"})
_MULTIPLIERS: dict[str, int] = {"double": 2, "triple": 3}

_NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TENS) | frozenset(_SCALES) | frozenset(_ORDINALS)
_WORDISH = frozenset(_NUMBER_WORDS | _JOINERS | frozenset(_MULTIPLIERS) | {"point"})

# A digit token: 1,299.99 / 45.50 / 2024 / 15th / 3:30 is two tokens.
_DIGITS = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?:st|nd|rd|th)?(?![\w])|\d+")
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True, slots=True)
class NumberMention:
    """One number an output text states: where, as written, and the value it means."""

    start: int
    end: int
    text: str
    value: str  # canonical decimal: "45.5", "2024", "0.5"


def canonical(number: str | int | Decimal) -> str:
    """A number as one canonical decimal string: "045.50" → "45.5", "1,299" → "1299"."""
    try:
        value = Decimal(str(number).replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"number {number!r} is not a decimal number") from None
    text = format(value.normalize(), "f")
    return text


def _digit_values(token: str) -> set[str]:
    """Every value a digit token may stand for (transcript side)."""
    core = re.sub(r"(st|nd|rd|th)$", "", token)
    values = {canonical(core)}
    for part in re.split(r"[,.]", core):
        if part:
            values.add(canonical(part))
    if "," in core:
        values.add(canonical(core.split(".")[0]))
    if "." in core:
        whole, frac = core.split(".", 1)
        values.add(canonical(whole))
        values.add(canonical(frac))
    return values


def _group_value(words: list[str]) -> int | None:
    """A cardinal from number words ("two hundred and five" → 205), None if not one."""
    total = 0
    current = 0
    seen = False
    for word in words:
        if word in _JOINERS:
            continue
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word in _ORDINALS:
            current += _ORDINALS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in ("thousand", "million"):
            total += (current or 1) * _SCALES[word]
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def _split_groups(words: list[str]) -> list[list[str]]:
    """Cut a run into groups read separately: "twenty twenty four" → [twenty], [twenty four].

    A new group starts where a word could not continue the current cardinal: a unit or
    tens word after a unit or teen, a tens word after a tens word, anything after an
    ordinal.
    """
    groups: list[list[str]] = []
    prev_kind = ""
    for word in words:
        if word in _JOINERS:
            if groups:
                groups[-1].append(word)
            continue
        kind = (
            "unit"
            if word in _UNITS
            else "tens"
            if word in _TENS
            else "scale"
            if word in _SCALES
            else "ord"
        )
        starts_new = (
            not groups
            or prev_kind == "ord"
            or (kind in ("unit", "tens", "ord") and prev_kind == "unit")
            or (kind == "tens" and prev_kind == "tens")
        )
        # "hundred" after "twenty five" continues it; after "tens"+unit too.
        if starts_new:
            groups.append([word])
        else:
            groups[-1].append(word)
        prev_kind = kind
    return groups


def _expand_multipliers(words: list[str]) -> list[str]:
    """ "double four" → four four; "triple one" → one one one."""
    out: list[str] = []
    repeat = 1
    for word in words:
        if word in _MULTIPLIERS:
            repeat = _MULTIPLIERS[word]
            continue
        out.extend([word] * repeat)
        repeat = 1
    return out


def _run_values(words: list[str]) -> set[str]:
    """Every value a run of number words may stand for (transcript side)."""
    words = _expand_multipliers(words)
    values: set[str] = set()
    if "point" in words:
        i = words.index("point")
        whole = _group_value(words[:i]) if words[:i] else 0
        decimals = [_UNITS.get(w) for w in words[i + 1 :]]
        if whole is not None and decimals and all(d is not None and d < 10 for d in decimals):
            values.add(canonical(f"{whole}.{''.join(str(d) for d in decimals)}"))
        return values | _run_values(words[:i]) | _run_values(words[i + 1 :])
    if not words:
        return values
    groups = [g for g in _split_groups(words) if any(w not in _JOINERS for w in g)]
    group_values = [_group_value(g) for g in groups]
    known = [v for v in group_values if v is not None]
    values.update(str(v) for v in known)
    for word in words:
        if word not in _JOINERS and word not in _SCALES:
            single = _group_value([word])
            if single is not None:
                values.add(str(single))
    if len(known) == len(groups) and len(known) > 1:
        values.add(str(int("".join(str(v) for v in known))))
        if len(known) == 2 and known[1] < 100:
            values.add(canonical(f"{known[0]}.{known[1]:02d}"))
    return values


def _word_runs(text: str) -> Iterator[tuple[int, int, list[str]]]:
    """Maximal runs of number words (with joiners inside), as (start, end, words)."""
    run: list[tuple[int, int, str]] = []

    def flush() -> Iterator[tuple[int, int, list[str]]]:
        while run and run[-1][2] not in _NUMBER_WORDS:
            run.pop()
        while run and run[0][2] not in _NUMBER_WORDS | frozenset(_MULTIPLIERS):
            run.pop(0)
        if run:
            yield run[0][0], run[-1][1], [w for _, _, w in run]
        run.clear()

    last_end = 0
    for m in _WORD.finditer(text):
        word = m.group().lower()
        between = text[last_end : m.start()]
        if run and (not re.fullmatch(r"[\s\-]*", between) or run[-1][2] in _ORDINALS):
            # Punctuation ends a number ("March third, twenty twenty four" is two), and so
            # does an ordinal: it can only be the last word of one.
            yield from flush()
        if word in _WORDISH:
            run.append((m.start(), m.end(), word))
        else:
            yield from flush()
        last_end = m.end()
    yield from flush()


def spoken_numbers(text: str) -> frozenset[str]:
    """Every value the text may have said, digits and words alike (canonical strings)."""
    return said_values(text)[0]


def said_values(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(every value the text may have said, the values it said *exactly*).

    The exact ones leave out the parts of digit tokens ("$64.20" said 64.2 exactly, and
    64 and 20 only loosely): an output that writes cents ("$64.00") must match exactly.
    """
    loose: set[str] = set()
    exact: set[str] = set()
    for m in _DIGITS.finditer(text):
        token = m.group()
        loose |= _digit_values(token)
        exact.add(canonical(re.sub(r"(st|nd|rd|th)$", "", token)))
    for _, _, words in _word_runs(text):
        values = _run_values(words)
        loose |= values
        exact |= values
    for m in _WORD.finditer(text):
        implied = _IMPLIED.get(m.group().lower())
        if implied is not None:
            loose.add(implied)
            exact.add(implied)
    return frozenset(loose), frozenset(exact)


def find_numbers(text: str) -> list[NumberMention]:
    """The numbers an output text states, each with its one value, in text order."""
    found: list[NumberMention] = []
    for m in _DIGITS.finditer(text):
        token = m.group()
        core = re.sub(r"(st|nd|rd|th)$", "", token)
        if "," in core and not re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", core):
            # "3,4" is a list, not a thousands separator: each part is its own number.
            offset = m.start()
            for part in core.split(","):
                found.append(NumberMention(offset, offset + len(part), part, canonical(part)))
                offset += len(part) + 1
            continue
        found.append(NumberMention(m.start(), m.end(), token, canonical(core)))
    for start, end, words in _word_runs(text):
        content = [w for w in words if w not in _JOINERS]
        if all(w in _ORDINALS for w in content):
            continue
        if content == ["one"]:
            continue
        expanded = _expand_multipliers(words)
        if "point" in expanded:
            i = expanded.index("point")
            whole = _group_value(expanded[:i]) if expanded[:i] else 0
            decimals = [_UNITS.get(w) for w in expanded[i + 1 :]]
            if whole is None or not decimals or any(d is None or d > 9 for d in decimals):
                continue
            value = canonical(f"{whole}.{''.join(str(d) for d in decimals)}")
        else:
            groups = [g for g in _split_groups(expanded) if any(w not in _JOINERS for w in g)]
            group_values = [_group_value(g) for g in groups]
            if any(v is None for v in group_values):
                continue
            if len(group_values) == 1:
                value = str(group_values[0])
            else:
                value = str(int("".join(str(v) for v in group_values)))
        found.append(NumberMention(start, end, text[start:end], value))
    found.sort(key=lambda n: n.start)
    return found


def _spelled(text: str) -> str:
    return f" {normalize_text(text)} "


@dataclass(frozen=True, slots=True)
class TranscriptNumbers:
    """What a transcript said, prepared once for checking many output texts."""

    values: frozenset[str]
    exact: frozenset[str]
    spelled: str  # normalize_text of the whole transcript, padded with spaces

    @classmethod
    def of(cls, texts: Iterable[str]) -> TranscriptNumbers:
        joined = "\n".join(texts)
        loose, exact = said_values(joined)
        return cls(values=loose, exact=exact, spelled=_spelled(joined))

    def supports(self, mention: NumberMention) -> bool:
        """Said, loosely for whole numbers, exactly for one written with a decimal point."""
        if mention.value in (self.exact if "." in mention.text else self.values):
            return True
        return self._spelled_alone(normalize_text(mention.text))

    def _spelled_alone(self, spelled: str) -> bool:
        """The spelled-out number occurs in the spelled-out transcript as a whole number:
        "two" does not match inside "seventy two"."""
        if not spelled:
            return False
        needle = f" {spelled} "
        start = self.spelled.find(needle)
        while start >= 0:
            before = self.spelled[:start].split()[-1:]
            after = self.spelled[start + len(needle) :].split()[:1]
            if not any(w in _WORDISH for w in before + after):
                return True
            start = self.spelled.find(needle, start + 1)
        return False


def unsupported_numbers(text: str, said: TranscriptNumbers) -> list[NumberMention]:
    """The numbers in ``text`` that the transcript never said."""
    return [m for m in find_numbers(text) if not said.supports(m)]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (a decimal point or "e.g." inside a number stays inside)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in re.finditer(r"[.!?]+(?=\s|$)|\n", text):
        end = m.end()
        if text[start:end].strip():
            spans.append((start, end))
        start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def remove_sentences_with(text: str, mentions: Iterable[NumberMention]) -> tuple[str, list[str]]:
    """Drop every sentence holding one of ``mentions``; return the rest and what was dropped."""
    bad = list(mentions)
    kept: list[str] = []
    dropped: list[str] = []
    for start, end in split_sentences(text):
        sentence = text[start:end]
        if any(start <= m.start < end for m in bad):
            dropped.append(sentence.strip())
        else:
            kept.append(sentence)
    return " ".join(s.strip() for s in kept if s.strip()), dropped
