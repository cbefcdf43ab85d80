"""Finding and masking what a PCI-DSS contact centre must never keep: card data and PII.

Everything here is a pure function of its arguments (text in, spans out; spans in, text
out), so the rules are table-tested and the live path (``RedactingSink``) only decides
*when* to call them.

Theory of operation. A text is cut into tokens (digit groups and words, with their
character offsets). Number words become digit *chunks*: "four" → 4, "oh"/"zero" → 0,
"double four" → 44, "triple one" → 111, "forty one" → 41, "nineteen" → 19, and
cardinals with a scale word ("four hundred eleven" → 411, "two thousand twenty six" →
2026). Chunks that follow each other with only spaces, commas, hyphens, dots or
hesitations ("um") between them form a *loose run*; a payment card is any window of
whole chunks in a loose run holding 13–19 digits, not starting with 0, that passes the
Luhn check. Because a Luhn check alone accepts one random number in ten, everything
weaker than a card needs *context*: a trigger phrase ("my PIN is", "security code",
"expires", "social security", "phone number") up to eight words before the value, or a
few filler words after it ("4321 is my PIN"). Those values come from *strict runs*
(spaces, one comma or hyphen, or a bare dot between chunks), with amounts, dates and
quantities ("$1,299.99", "2024-03-01", "March 3rd 2024", "12 items") left out. Formats
that are unambiguous on their own are found without context: dashed SSNs
(123-45-6789), IBANs (country length table and the ISO 7064 mod-97 check, also spelled
out letter by letter), e-mail addresses written or spoken ("john dot smith at gmail dot
com") and phone numbers in NANP or E.164 layout. ``context`` (what was said just
before, by either party) is searched for triggers only and never redacted itself.

Masking keeps the text's length and shape: every letter or digit inside a span becomes
one mask character and everything else (spaces, dashes, dots, "@") stays, so
"4111 1111 1111 1111" becomes "#### #### #### ####" and word timings still line up.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal

import numpy as np

from sipscribe.pipeline.utterance import Utterance, UtteranceWord


class RedactionError(ValueError):
    """Bad input to a redaction function; the message names the value and its fault."""


class SensitiveKind(StrEnum):
    """What a span holds; also the names a tenant's policy enables."""

    CARD_NUMBER = "card_number"
    CARD_EXPIRY = "card_expiry"
    CVV = "cvv"
    PIN = "pin"
    SSN = "ssn"
    IBAN = "iban"
    EMAIL = "email"
    PHONE = "phone"


ALL_KINDS: frozenset[SensitiveKind] = frozenset(SensitiveKind)

OutputMode = Literal["redacted", "unredacted", "redacted_and_unredacted"]
OUTPUT_MODES: tuple[str, ...] = ("redacted", "unredacted", "redacted_and_unredacted")

#: When two findings overlap, the earlier kind here keeps the overlap. An IBAN (exact
#: length per country and a mod-97 check) outranks the card number a Luhn window inside
#: its digits can pass by chance.
PRIORITY: tuple[SensitiveKind, ...] = (
    SensitiveKind.IBAN,
    SensitiveKind.CARD_NUMBER,
    SensitiveKind.SSN,
    SensitiveKind.EMAIL,
    SensitiveKind.PHONE,
    SensitiveKind.CARD_EXPIRY,
    SensitiveKind.CVV,
    SensitiveKind.PIN,
)


def _kind(value: SensitiveKind | str) -> SensitiveKind:
    try:
        return SensitiveKind(value)
    except ValueError:
        raise RedactionError(f"unknown redaction kind {value!r}") from None


@dataclass(frozen=True, slots=True)
class Span:
    """Characters ``start``..``end`` (end exclusive) of a text hold a ``kind``."""

    start: int
    end: int
    kind: SensitiveKind

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise RedactionError(f"span {self.start}..{self.end} is empty or negative")
        object.__setattr__(self, "kind", _kind(self.kind))


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """Milliseconds from the stream start during which a ``kind`` was spoken."""

    start_ms: int
    end_ms: int
    kind: SensitiveKind

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms:
            raise RedactionError(
                f"time span {self.start_ms}..{self.end_ms} ms ends before it starts"
            )
        object.__setattr__(self, "kind", _kind(self.kind))

    def to_dict(self) -> dict[str, Any]:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "kind": str(self.kind)}


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """One tenant's (or one call's) choice of what to redact and what to send.

    ``kinds`` may be given as strings (from configuration); they are checked and kept as
    ``SensitiveKind``. ``output`` says what leaves ``RedactingSink``: only redacted
    utterances (the default), the original ones, or both (the raw text travels in a
    separate field that is never serialised by default). DTMF digits are replaced by
    "#" unless ``dtmf_digits_allowed``: a caller keying in a card number must not leave
    it in the event log either.
    """

    kinds: frozenset[SensitiveKind] = ALL_KINDS
    dtmf_digits_allowed: bool = False
    output: OutputMode = "redacted"

    def __post_init__(self) -> None:
        if isinstance(self.kinds, str):
            raise RedactionError(f"redaction kinds must be a collection, not {self.kinds!r}")
        object.__setattr__(self, "kinds", frozenset(_kind(k) for k in self.kinds))
        if self.output not in OUTPUT_MODES:
            raise RedactionError(
                f"redaction output mode {self.output!r} is not one of {', '.join(OUTPUT_MODES)}"
            )

    def enabled(self, kind: SensitiveKind) -> bool:
        return kind in self.kinds


DEFAULT_POLICY = RedactionPolicy()


# --------------------------------------------------------------------------------------
# Lexicon
# --------------------------------------------------------------------------------------

UNITS: dict[str, str] = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "naught": "0", "nil": "0",
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
TEENS: dict[str, str] = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
TENS: dict[str, str] = {
    "twenty": "2", "thirty": "3", "forty": "4", "fourty": "4", "fifty": "5",
    "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
REPEATS: dict[str, int] = {"double": 2, "triple": 3, "treble": 3}
SCALES: dict[str, int] = {"hundred": 100, "thousand": 1000}
NUMBER_WORDS: frozenset[str] = frozenset({*UNITS, *TEENS, *TENS, *REPEATS, *SCALES})

#: Hesitations that may sit inside a dictated number without ending it.
HESITATIONS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "mm", "mhm"})
#: "this one", "the one": a pronoun, not a digit.
_ONE_PRONOUN_AFTER = frozenset(
    "this that the which no each every any another other same first last next right "
    "new old big small little only".split()
)
MONTHS: dict[str, int] = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11,
    "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
#: A number right before one of these is a quantity, price or time, not a secret.
UNIT_WORDS = frozenset(
    "dollars dollar bucks cents cent pounds pound quid pence euros euro percent items item "
    "times minutes minute hours hour days day weeks week months month years year seconds "
    "am pm o'clock people units pieces pcs miles kilometers km kg lbs gb mb tb points "
    "orders packages boxes".split()
)
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})

_N_DIGIT = ("three", "3", "four", "4")
_TRIGGER_PHRASES: dict[SensitiveKind, list[str]] = {
    # After these, any run of 6+ digits is the card, Luhn-valid or not: recognition
    # drops, inserts and swaps digits, and a misheard card number is still cardholder
    # data. Without such a trigger a card must pass Luhn.
    SensitiveKind.CARD_NUMBER: [
        "card", "card number", "card no", "credit card", "debit card", "card num",
        "long number", "number on the front", "visa", "mastercard", "amex",
    ],
    SensitiveKind.CARD_EXPIRY: [
        "expiry", "expiration", "expires", "expire", "expired", "expiring", "exp",
        "valid thru", "valid through", "valid until", "valid till", "valid to",
        "good thru", "good through", "good until",
    ],
    SensitiveKind.CVV: [
        "cvv", "cvv 2", "cvc", "cvc 2", "cv 2", "cvn", "csc", "security code",
        "card security code", "card verification", "card verification value",
        "verification value", "digits on the back", "code on the back",
        "number on the back", "numbers on the back", "back of the card",
        "back of my card", "back of your card",
        *(f"{n} digit {w}" for n in _N_DIGIT for w in ("code", "number", "security code")),
    ],
    SensitiveKind.PIN: [
        "pin", "pin number", "pin code", "security pin", "passcode", "pass code",
        "password", "access code", "otp", "one time code", "one time passcode",
        "verification code", "pins",
        *(f"{n} digit pin" for n in _N_DIGIT),
    ],
    SensitiveKind.SSN: [
        "social security", "social security number", "ssn", "my social", "your social",
        "the social", "social insurance number",
    ],
    SensitiveKind.PHONE: [
        "phone", "phone number", "telephone", "telephone number", "cell", "cell phone",
        "cellphone", "mobile", "mobile number", "landline", "call me at", "call me on",
        "call me back at", "call me back on", "reach me at", "reach me on", "text me at",
        "text me on", "callback number", "call back number", "contact number",
        "my number", "best number", "fax", "home number", "work number",
        "number to reach", "number to call", "direct line",
    ],
    SensitiveKind.EMAIL: ["email", "e mail", "email address", "emails"],
}  # fmt: skip
_PHRASES: list[tuple[tuple[str, ...], SensitiveKind]] = sorted(
    (
        (tuple(phrase.split()), kind)
        for kind, phrases in _TRIGGER_PHRASES.items()
        for phrase in phrases
    ),
    key=lambda p: -len(p[0]),
)
_PHRASES_BY_FIRST: dict[str, list[tuple[tuple[str, ...], SensitiveKind]]] = {}
for _words, _k in _PHRASES:
    _PHRASES_BY_FIRST.setdefault(_words[0], []).append((_words, _k))

#: Words allowed between a value and the trigger after it: "4321 is my PIN".
_BACK_FILLER = frozenset(
    "is was my the your our his her their that's thats it's its as being be".split()
)
#: Words between an e-mail trigger and the address: "my email address is john ...".
_EMAIL_FILLER = frozenset(
    "is it's its my address that's thats it was would be will should you can use "
    "the our his her their".split()
)
#: A single word before "at" that makes "X at Y dot com" a place, not an address.
_NOT_LOCAL_PART = frozenset(
    """i me you we us they them he him she her it this that these those there here
    look looking looked be been being is are was were am arrive arrived arriving meet
    met meeting stay staying stayed home work working worked shop shopping shopped buy
    buying bought sell selling sold available back office school store everyone people
    anyone someone one nobody things something get got see saw check checked checking
    call called find found sign signed log logged go went going come came coming live
    lives lived stop stopped order ordered sale all good great best price prices rate
    rates time once least first last start starts started online website site page
    app click visit visited it's that's offer offers deals deal stuff products""".split()
)
_TLDS = frozenset(
    """com net org edu gov mil int io co uk us ca de fr es it nl be ch at au nz ie in jp
    cn br mx info biz me tv ai app dev email online eu se no dk fi pl pt ru za sg hk kr
    tw ar cl cz gr hu il ro tr ua vn xyz cc ly""".split()
)
_DOT_WORDS = frozenset({"dot", "period", "point"})
_JOIN_WORDS = frozenset({"underscore", "dash", "hyphen"})

# ISO 13616 IBAN lengths per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_CURRENCY = "$£€¥₹"
_TOKEN_RE = re.compile(r"[0-9]+|[^\W\d_]+(?:['’][^\W\d_]+)*")
_WORD_GAP = re.compile(r"[ \t\-–]*")  # inside one number or phrase: "forty-one", "e-mail"
_LOOSE_GAP = re.compile(r"[\s,.\-–—…;]*")
_STRICT_GAP = re.compile(r"[ \t]*(?:[,\-–][ \t]*)?|\.")
_IBAN_GAP = re.compile(r"[ \t\-]*")
_PRICE = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]{1,2})?|[0-9]+\.[0-9]{1,2}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}")
_SSN_DASHED = re.compile(r"(?<![0-9]-)(?<![0-9])([0-9]{3})-([0-9]{2})-([0-9]{4})(?!-?[0-9])")
_NANP = re.compile(
    r"(?<![\w+])(?:\+?1[ .\-]?)?"
    r"(?:\([2-9][0-9]{2}\)[ ]?|[2-9][0-9]{2}([ .\-]))"
    r"[0-9]{3}(?(1)\1|[ .\-])[0-9]{4}(?!\w)"
)
_EXPIRY_SLASH = re.compile(
    r"(?<![0-9/])(?:0?[1-9]|1[0-2])[ ]?[/\-.][ ]?(?:[0-9]{2}|20[0-9]{2})(?![0-9/])"
)
_EMAIL_WRITTEN = re.compile(
    r"(?<![\w.+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]*[A-Za-z0-9_%+\-])?"
    r"@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,}(?![\w\-])"
)

#: Between context and text: not a word (trigger windows reach across it), but it ends
#: every run of digits, address and phone number.
_CONTEXT_BREAK = "\n¶\n"
#: Words from a trigger to its value, and from a value back to a trigger after it.
FORWARD_WINDOW = 8
BACKWARD_WINDOW = 3


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812 check digit: the Luhn sum of ``digits`` is a multiple of 10."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616: known country, its exact length, and ISO 7064 mod-97 remainder 1."""
    s = iban.replace(" ", "").upper()
    if not (s.isascii() and s.isalnum()) or len(s) < 5:
        return False
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# --------------------------------------------------------------------------------------
# Tokens, chunks, runs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    word: str  # lower case, ’ → ', possessive 's dropped
    start: int
    end: int
    digits: bool


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Consecutive tokens that say one group of digits: "4111", "double four", "forty one"."""

    digits: str
    first: int  # token indices, inclusive
    last: int
    start: int  # character offsets, end exclusive
    end: int
    glued: bool  # digits written against letters: "CVV2", "3rd", "ORD123"


@dataclass(frozen=True, slots=True)
class _Run:
    chunks: tuple[_Chunk, ...]

    @property
    def digits(self) -> str:
        return "".join(c.digits for c in self.chunks)

    @property
    def first(self) -> int:
        return self.chunks[0].first

    @property
    def last(self) -> int:
        return self.chunks[-1].last

    @property
    def start(self) -> int:
        return self.chunks[0].start

    @property
    def end(self) -> int:
        return self.chunks[-1].end


@dataclass(frozen=True, slots=True)
class _Trigger:
    kind: SensitiveKind
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A value a trigger may claim: token range and character span."""

    first: int
    last: int
    start: int
    end: int


def _tokenize(text: str) -> list[_Token]:
    out = []
    for m in _TOKEN_RE.finditer(text):
        raw = m.group()
        word = raw.lower().replace("’", "'")
        if word.endswith("'s") and len(word) > 2:
            word = word[:-2]
        out.append(_Token(raw, word, m.start(), m.end(), "0" <= raw[0] <= "9"))
    return out


class _Text:
    """One text's tokens, trigger phrases, digit chunks and runs, computed once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self._starts = [t.start for t in self.tokens]
        self.triggers = self._find_triggers()
        in_trigger = {i for t in self.triggers for i in range(t.first, t.last + 1)}
        self.chunks = self._find_chunks(in_trigger)
        self.loose_runs = self._runs(loose=True)
        self.strict_runs = self._runs(loose=False)

    # -- helpers ------------------------------------------------------------------------
    def word(self, i: int) -> str | None:
        return self.tokens[i].word if 0 <= i < len(self.tokens) else None

    def joined(self, i: int, j: int) -> bool:
        """Tokens i and j = i + 1 are parts of one phrase or number (space or hyphen)."""
        if j >= len(self.tokens):
            return False
        return _WORD_GAP.fullmatch(self.text, self.tokens[i].end, self.tokens[j].start) is not None

    def token_at(self, offset: int) -> int:
        """Index of the token that starts at or before character ``offset``."""
        return max(0, bisect.bisect_right(self._starts, offset) - 1)

    def token_after(self, offset: int) -> int:
        """Index of the first token starting at or after character ``offset``."""
        return bisect.bisect_left(self._starts, offset)

    # -- triggers -----------------------------------------------------------------------
    def _find_triggers(self) -> list[_Trigger]:
        found: list[_Trigger] = []
        n = len(self.tokens)
        i = 0
        while i < n:
            match = None
            for words, kind in _PHRASES_BY_FIRST.get(self.tokens[i].word, ()):
                end = i + len(words) - 1
                if end >= n:
                    continue
                if all(
                    self.tokens[i + k].word == w and (k == 0 or self.joined(i + k - 1, i + k))
                    for k, w in enumerate(words)
                ):
                    match = _Trigger(kind, i, end)
                    break
            if match is None:
                i += 1
                continue
            found.append(match)
            i = match.last + 1
        return found

    # -- number words -------------------------------------------------------------------
    def _below_hundred(self, i: int, skip: set[int]) -> tuple[int, int] | None:
        w = self.word(i)
        if w is None or i in skip:
            return None
        if w in TENS:
            value = int(TENS[w]) * 10
            nxt = self.word(i + 1)
            if nxt in UNITS and UNITS[nxt] != "0" and i + 1 not in skip and self.joined(i, i + 1):
                return value + int(UNITS[nxt]), i + 1
            return value, i
        if w in TEENS:
            return int(TEENS[w]), i
        if w in UNITS and UNITS[w] != "0" and w != "o":
            return int(UNITS[w]), i
        return None

    def _below_thousand(self, i: int, skip: set[int]) -> tuple[int, int, bool] | None:
        head = self._below_hundred(i, skip)
        if head is None:
            return None
        value, j = head
        if self.word(j + 1) == "hundred" and j + 1 not in skip and self.joined(j, j + 1):
            value *= 100
            j += 1
            k = j + 1
            if self.word(k) == "and" and self.joined(j, k):
                k += 1
            tail = self._below_hundred(k, skip) if self.joined(k - 1, k) else None
            if tail is not None:
                value += tail[0]
                j = tail[1]
            return value, j, True
        return value, j, False

    def _cardinal(self, i: int, skip: set[int]) -> tuple[int, int] | None:
        """A cardinal with a scale word ("four hundred eleven"), else None."""
        head = self._below_thousand(i, skip)
        if head is None:
            return None
        value, j, scaled = head
        if self.word(j + 1) == "thousand" and j + 1 not in skip and self.joined(j, j + 1):
            value *= 1000
            j += 1
            scaled = True
            k = j + 1
            if self.word(k) == "and" and self.joined(j, k):
                k += 1
            if self.joined(k - 1, k):
                tail = self._below_thousand(k, skip)
                if tail is not None:
                    value += tail[0]
                    j = tail[1]
        return (value, j) if scaled else None

    def _find_chunks(self, skip: set[int]) -> list[_Chunk]:
        chunks: list[_Chunk] = []
        tokens = self.tokens
        n = len(tokens)
        i = 0
        while i < n:
            if i in skip:
                i += 1
                continue
            t = tokens[i]
            if t.digits:
                glued = (i > 0 and tokens[i - 1].end == t.start) or (
                    i + 1 < n and tokens[i + 1].start == t.end
                )
                chunks.append(_Chunk(t.text, i, i, t.start, t.end, glued))
                i += 1
                continue
            w = t.word
            digits: str | None = None
            last = i
            cardinal = self._cardinal(i, skip)
            if cardinal is not None:
                digits, last = str(cardinal[0]), cardinal[1]
            elif w in REPEATS and i + 1 < n and i + 1 not in skip and self.joined(i, i + 1):
                nxt = tokens[i + 1]
                if nxt.word in UNITS:
                    digits, last = UNITS[nxt.word] * REPEATS[w], i + 1
                elif nxt.digits and len(nxt.text) == 1:
                    digits, last = nxt.text * REPEATS[w], i + 1
            elif w in TENS:
                below = self._below_hundred(i, skip)
                assert below is not None
                digits, last = str(below[0]), below[1]
            elif w in TEENS:
                digits = TEENS[w]
            elif w in UNITS and not self._pronoun_one(i, skip):
                digits = UNITS[w]
            if digits is not None:
                chunks.append(_Chunk(digits, i, last, t.start, tokens[last].end, False))
            i = last + 1
        return chunks

    def _pronoun_one(self, i: int, skip: set[int]) -> bool:
        """ "this one", "the one": a pronoun, unless more digits follow ("the one one two")."""
        if self.word(i) != "one" or self.word(i - 1) not in _ONE_PRONOUN_AFTER:
            return False
        j = i + 1
        while j < len(self.tokens) and self.tokens[j].word in HESITATIONS:
            j += 1  # "the one, um, zero…": hesitations do not end a digit run
        if j >= len(self.tokens) or j in skip:
            return True
        if not self.only_filler(self.tokens[i].end, self.tokens[j].start):
            return True
        nxt = self.tokens[j]
        return not (nxt.digits or nxt.word in NUMBER_WORDS)

    def joined_loosely(self, i: int, j: int) -> bool:
        return _LOOSE_GAP.fullmatch(self.text, self.tokens[i].end, self.tokens[j].start) is not None

    def _runs(self, *, loose: bool) -> list[_Run]:
        runs: list[_Run] = []
        current: list[_Chunk] = []
        for chunk in self.chunks:
            if not loose and chunk.glued:
                if current:
                    runs.append(_Run(tuple(current)))
                current = []
                continue
            if current and self._continues(current[-1], chunk, loose=loose):
                current.append(chunk)
                continue
            if current:
                runs.append(_Run(tuple(current)))
            current = [chunk]
        if current:
            runs.append(_Run(tuple(current)))
        return runs

    def _continues(self, a: _Chunk, b: _Chunk, *, loose: bool) -> bool:
        between = range(a.last + 1, b.first)
        if not loose:
            return not between and _STRICT_GAP.fullmatch(self.text, a.end, b.start) is not None
        pos = a.end
        for k in between:
            tok = self.tokens[k]
            if tok.word not in HESITATIONS:
                return False
            if _LOOSE_GAP.fullmatch(self.text, pos, tok.start) is None:
                return False
            pos = tok.end
        return _LOOSE_GAP.fullmatch(self.text, pos, b.start) is not None

    # -- edges, for numbers split across utterances ------------------------------------
    def only_filler(self, start: int, end: int) -> bool:
        """Characters start..end hold only punctuation, spaces and hesitations."""
        pos = start
        for k in range(self.token_after(start), len(self.tokens)):
            tok = self.tokens[k]
            if tok.start >= end:
                break
            if tok.word not in HESITATIONS:
                return False
            if _LOOSE_GAP.fullmatch(self.text, pos, tok.start) is None:
                return False
            pos = tok.end
        return _LOOSE_GAP.fullmatch(self.text, pos, end) is not None


# --------------------------------------------------------------------------------------
# Detectors; each returns (start, end, kind) triples on the text it is given
# --------------------------------------------------------------------------------------

_Found = tuple[int, int, SensitiveKind]


#: First digits of payment card numbers (ISO/IEC 7812 major industry identifiers 2-6).
_CARD_FIRST_DIGITS = frozenset("23456")


def _cards(t: _Text) -> list[_Found]:
    """Luhn-valid 13-19 digit windows starting on a chunk; the whole run is masked.

    Once a card is found in a run of digits, the rest of that run goes too: speech
    recognition inserts and repeats digits ("four one one one one…" with one "one"
    too many), and the digits next to a card number are its own digits shifted, never
    safe to show. A single chunk longer than 19 digits (recognised without spaces) is a
    card when a 13-19 digit prefix passes Luhn and starts with a card network digit.
    """
    found: list[_Found] = []
    for run in t.loose_runs:
        chunks = run.chunks
        hit = False
        for i, head in enumerate(chunks):
            if head.digits[0] == "0":
                continue
            if (
                len(head.digits) > 19
                and head.digits[0] in _CARD_FIRST_DIGITS
                and any(luhn_ok(head.digits[:n]) for n in range(13, 20))
            ):
                hit = True
                break
            digits = ""
            for j in range(i, len(chunks)):
                digits += chunks[j].digits
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_ok(digits):
                    found.append((head.start, chunks[j].end, SensitiveKind.CARD_NUMBER))
                    hit = True
        if hit and chunks:
            found.append((chunks[0].start, chunks[-1].end, SensitiveKind.CARD_NUMBER))
    return found


def _ssns(t: _Text) -> list[_Found]:
    return [
        (m.start(), m.end(), SensitiveKind.SSN)
        for m in _SSN_DASHED.finditer(t.text)
        if _ssn_ok(*m.groups())
    ]


def _phones(t: _Text) -> list[_Found]:
    found = [(m.start(), m.end(), SensitiveKind.PHONE) for m in _NANP.finditer(t.text)]
    text = t.text
    for m in re.finditer(r"\+(?=[0-9])", text):
        if m.start() > 0 and (text[m.start() - 1].isalnum() or text[m.start() - 1] == "+"):
            continue
        pos = m.end()
        end = pos
        digits = 0
        seps = 0
        while pos < len(text):
            ch = text[pos]
            if ch.isdigit() and ch.isascii():
                digits += 1
                seps = 0
                end = pos + 1
            elif ch in " .-()" and seps < 2:
                seps += 1
            else:
                break
            pos += 1
        if end < len(text) and text[end].isalpha():
            continue
        if 8 <= digits <= 15:
            close = end + 1 if text[end : end + 1] == ")" else end
            found.append((m.start(), close, SensitiveKind.PHONE))
    return found


def _ibans(t: _Text) -> list[_Found]:
    """IBANs written ("GB82 WEST 1234 …", "DE8937…") or spelled ("G B eight two …")."""
    chunk_at = {c.first: c for c in t.chunks}
    elements: list[tuple[str, int, int, int, int]] = []  # chars, first, last, start, end
    i = 0
    while i < len(t.tokens):
        tok = t.tokens[i]
        chunk = chunk_at.get(i)
        if chunk is not None:
            elements.append((chunk.digits, chunk.first, chunk.last, chunk.start, chunk.end))
            i = chunk.last + 1
            continue
        if tok.text.isascii() and tok.text.isalpha():
            glued = (i > 0 and t.tokens[i - 1].end == tok.start) or (
                i + 1 < len(t.tokens) and t.tokens[i + 1].start == tok.end
            )
            if len(tok.text) <= 4 or tok.text.isupper() or glued:
                elements.append((tok.text.upper(), i, i, tok.start, tok.end))
        i += 1
    found: list[_Found] = []
    group: list[tuple[str, int, int, int, int]] = []
    for el in [*elements, None]:
        if (
            el is not None
            and group
            and el[1] == group[-1][2] + 1
            and _IBAN_GAP.fullmatch(t.text, group[-1][4], el[3]) is not None
        ):
            group.append(el)
            continue
        if group:
            found.extend(_ibans_in(group))
        group = [el] if el is not None else []
    return found


def _ibans_in(group: list[tuple[str, int, int, int, int]]) -> list[_Found]:
    joined = "".join(e[0] for e in group)
    ends: dict[int, int] = {}  # offset in joined → element index ending there
    offsets: list[int] = []
    pos = 0
    for k, e in enumerate(group):
        offsets.append(pos)
        pos += len(e[0])
        ends[pos] = k
    found: list[_Found] = []
    for k, off in enumerate(offsets):
        cc = joined[off : off + 2]
        length = IBAN_LENGTHS.get(cc)
        if length is None or not joined[off + 2 : off + 4].isdigit():
            continue
        last = ends.get(off + length)
        if last is not None and iban_ok(joined[off : off + length]):
            found.append((group[k][3], group[last][4], SensitiveKind.IBAN))
    return found


def _emails(t: _Text) -> list[_Found]:
    found = [(m.start(), m.end(), SensitiveKind.EMAIL) for m in _EMAIL_WRITTEN.finditer(t.text)]
    tokens = t.tokens
    n = len(tokens)
    text = t.text

    def gap(i: int) -> str:  # text between token i and token i + 1
        return text[tokens[i].end : tokens[i + 1].start]

    def element(i: int) -> bool:
        w = tokens[i].word
        return w not in ("at", "dot", "period", "point") and w not in _JOIN_WORDS

    def connector_before(i: int, words: frozenset[str], chars: str) -> int | None:
        """If a connector precedes token i, the index of the element before it."""
        if i >= 1 and len(gap(i - 1)) == 1 and gap(i - 1) in chars and element(i - 1):
            return i - 1
        if (
            i >= 2
            and tokens[i - 1].word in words
            and element(i - 2)
            and gap(i - 2).strip() == ""
            and gap(i - 1).strip() == ""
        ):
            return i - 2
        return None

    email_triggers = [tr for tr in t.triggers if tr.kind == SensitiveKind.EMAIL]
    for i in range(n):
        # "at" as a word, or "@" between two tokens
        if tokens[i].word == "at" and i >= 1 and gap(i - 1).strip() == "":
            local_end, domain_start = i - 1, i + 1
        elif i + 1 < n and gap(i).strip() == "@":
            local_end, domain_start = i, i + 1
        else:
            continue
        if domain_start >= n or not element(local_end) or not element(domain_start):
            continue
        # domain: element (connector element)*, ending on a top-level domain
        j = domain_start
        end_token = None
        while True:
            nxt = None
            if j + 1 < n and gap(j) in (".", "-") and element(j + 1):
                nxt = j + 1
            elif (
                j + 2 < n
                and tokens[j + 1].word in _DOT_WORDS | {"dash", "hyphen"}
                and gap(j).strip() == ""
                and gap(j + 1).strip() == ""
                and element(j + 2)
            ):
                nxt = j + 2
            if nxt is None:
                break
            dotted = gap(j) == "." or tokens[j + 1].word in _DOT_WORDS
            j = nxt
            if dotted and tokens[j].word in _TLDS:
                end_token = j
        if end_token is None:
            continue
        # local part: element (connector element)*, read backwards
        k = local_end
        joined_parts = False
        while True:
            prev = connector_before(k, _DOT_WORDS | _JOIN_WORDS, "._-+")
            if prev is None:
                break
            k = prev
            joined_parts = True
        start_token = k
        trigger = next(
            (
                tr
                for tr in reversed(email_triggers)
                if tr.last < start_token and start_token - tr.last - 1 <= FORWARD_WINDOW
            ),
            None,
        )
        if trigger is not None:
            first = trigger.last + 1
            while first < start_token and tokens[first].word in _EMAIL_FILLER:
                first += 1
            if start_token - first <= 4 and all(
                element(x) and tokens[x].text.isalnum() for x in range(first, start_token)
            ):
                start_token = first
        elif not joined_parts and tokens[start_token].word in _NOT_LOCAL_PART:
            continue
        found.append((tokens[start_token].start, tokens[end_token].end, SensitiveKind.EMAIL))
    return found


def _expiry_candidates(t: _Text) -> list[_Candidate]:
    out: list[_Candidate] = []
    for m in _EXPIRY_SLASH.finditer(t.text):
        out.append(_Candidate(t.token_at(m.start()), t.token_at(m.end() - 1), m.start(), m.end()))
    runs_by_first = {r.first: r for r in t.strict_runs}
    for run in t.strict_runs:
        d = run.digits
        ok = (
            (len(d) == 3 and d[0] != "0" and int(d[0]) >= 1)
            or (len(d) == 4 and 1 <= int(d[:2]) <= 12)
            or (len(d) == 6 and 1 <= int(d[:2]) <= 12 and d[2:4] == "20")
        )
        if ok and not _is_amount(t, run):
            out.append(_Candidate(run.first, run.last, run.start, run.end))
    # month (name, or a run 1–12) + optional "of"/"slash" + year (2 or 4 digits)
    for i, tok in enumerate(t.tokens):
        month_run = runs_by_first.get(i)
        if tok.word in MONTHS:
            after = i + 1
        elif (
            month_run is not None
            and len(month_run.digits) <= 2
            and 1 <= int(month_run.digits) <= 12
        ):
            after = month_run.last + 1
        else:
            continue
        if t.word(after) in ("of", "slash"):
            after += 1
        year = runs_by_first.get(after)
        if year is None:
            continue
        y = year.digits
        if len(y) == 2 or (len(y) == 4 and y[:2] in ("19", "20")):
            out.append(_Candidate(i, year.last, tok.start, year.end))
    return out


def _is_amount(t: _Text, run: _Run) -> bool:
    """Prices, quantities, dates and times: numbers that are not secrets."""
    text = t.text
    before = text[: run.start].rstrip()
    if before and before[-1] in _CURRENCY:
        return True
    raw = text[run.start : run.end]
    if _PRICE.fullmatch(raw) or _ISO_DATE.fullmatch(raw):
        return True
    if text[run.end : run.end + 1] in ("%", ":"):
        return True
    if run.start > 0 and text[run.start - 1] == ":":
        return True
    nxt = t.word(run.last + 1)
    if nxt in UNIT_WORDS and run.last + 1 < len(t.tokens):
        return True
    prev = t.word(run.first - 1)
    return prev is not None and (prev in MONTHS or prev in _ORDINAL_SUFFIXES)


def _value_candidates(t: _Text, kind: SensitiveKind) -> list[_Candidate]:
    if kind is SensitiveKind.CARD_EXPIRY:
        return _expiry_candidates(t)
    if kind is SensitiveKind.CARD_NUMBER:
        return [
            _Candidate(run.first, run.last, run.start, run.end)
            for run in t.loose_runs
            if len(run.digits) >= 6 and not _is_amount(t, run)
        ]
    out = []
    for run in t.strict_runs:
        n = len(run.digits)
        if kind is SensitiveKind.PIN:
            fits = 4 <= n <= 8
        elif kind is SensitiveKind.CVV:
            fits = 3 <= n <= 4
        elif kind is SensitiveKind.SSN:
            d = run.digits
            fits = n == 4 or (n == 9 and _ssn_ok(d[:3], d[3:5], d[5:]))
        else:  # PHONE
            fits = 7 <= n <= 15
        if fits and not _is_amount(t, run):
            out.append(_Candidate(run.first, run.last, run.start, run.end))
    return out


def _in_context(t: _Text, cards: list[_Found]) -> list[_Found]:
    """Values claimed by a trigger phrase: each trigger claims at most one value."""
    kinds = (
        SensitiveKind.CARD_NUMBER,
        SensitiveKind.PIN,
        SensitiveKind.CVV,
        SensitiveKind.SSN,
        SensitiveKind.PHONE,
        SensitiveKind.CARD_EXPIRY,
    )
    candidates = {k: _value_candidates(t, k) for k in kinds}
    found: list[_Found] = []
    for trig in t.triggers:
        if trig.kind not in candidates:
            continue
        pool = candidates[trig.kind]
        ahead = [
            c for c in pool if c.first > trig.last and c.first - trig.last - 1 <= FORWARD_WINDOW
        ]
        if ahead:
            pick = min(ahead, key=lambda c: c.first)
            found.append((pick.start, pick.end, trig.kind))
            continue
        behind = [
            c
            for c in pool
            if c.last < trig.first
            and trig.first - c.last - 1 <= BACKWARD_WINDOW
            and all(t.tokens[x].word in _BACK_FILLER for x in range(c.last + 1, trig.first))
        ]
        if behind:
            pick = max(behind, key=lambda c: c.last)
            found.append((pick.start, pick.end, trig.kind))
    # an expiry date said right after a card number needs no trigger
    expiries = [
        c for c in candidates[SensitiveKind.CARD_EXPIRY] if not t.text[c.start : c.end].isdigit()
    ]
    for _start, end, _kind in cards:
        last = t.token_at(end - 1)
        for c in expiries:
            if c.first > last and c.first - last - 1 <= 4:
                found.append((c.start, c.end, SensitiveKind.CARD_EXPIRY))
                break
    return found


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def _detect(text: str, policy: RedactionPolicy) -> list[_Found]:
    t = _Text(text)
    cards = _cards(t)
    found = [*cards, *_ibans(t), *_ssns(t), *_emails(t), *_phones(t), *_in_context(t, cards)]
    return [f for f in found if policy.enabled(f[2])]


def _resolve(found: Iterable[_Found], text: str) -> list[Span]:
    """One kind per character: higher-priority findings keep overlaps, others are trimmed."""
    rank = {k: i for i, k in enumerate(PRIORITY)}
    taken: list[tuple[int, int]] = []  # sorted, disjoint
    spans: list[Span] = []
    for start, end, kind in sorted(found, key=lambda f: (rank[f[2]], f[0], -f[1])):
        pieces = [(start, end)]
        for a, b in taken:
            nxt = []
            for s, e in pieces:
                if b <= s or e <= a:
                    nxt.append((s, e))
                    continue
                if s < a:
                    nxt.append((s, a))
                if b < e:
                    nxt.append((b, e))
            pieces = nxt
        for s, e in pieces:
            if any(ch.isalnum() for ch in text[s:e]):
                spans.append(Span(s, e, kind))
                bisect.insort(taken, (s, e))
    return sorted(spans, key=lambda s: s.start)


def find_sensitive(
    text: str, *, policy: RedactionPolicy | None = None, context: str = ""
) -> list[Span]:
    """Sensitive spans of ``text`` that ``policy`` (default: everything) redacts.

    ``context`` is what was said just before, by either party ("what's the security
    code on the back?"): its trigger phrases count for values in ``text``, within the
    usual eight words. Spans never point into the context, and no number runs from the
    context into ``text`` (a card split between one speaker's utterances is
    ``find_cards_across``'s job). Spans are disjoint and sorted; where two findings
    overlap the kind earlier in ``PRIORITY`` wins.
    """
    policy = policy or DEFAULT_POLICY
    if not policy.kinds:
        return []
    if not context:
        return _resolve(_detect(text, policy), text)
    offset = len(context) + len(_CONTEXT_BREAK)
    combined = f"{context}{_CONTEXT_BREAK}{text}"
    shifted = [
        (max(s, offset) - offset, e - offset, k)
        for s, e, k in _detect(combined, policy)
        if e > offset
    ]
    return _resolve(shifted, text)


def _check_spans(text: str, spans: Sequence[Span]) -> None:
    for span in spans:
        if span.end > len(text):
            raise RedactionError(
                f"span {span.start}..{span.end} is outside the text (length {len(text)})"
            )


def _check_mask(mask: str) -> None:
    if len(mask) != 1 or mask.isspace():
        raise RedactionError(f"redaction mask must be one visible character, got {mask!r}")


def redact(text: str, spans: Sequence[Span], *, mask: str = "#") -> str:
    """``text`` with each letter and digit inside ``spans`` replaced by one ``mask``.

    Spaces and punctuation inside a span are kept ("#### #### #### ####",
    "####.#####@#####.###") so the text keeps its length and word boundaries, and the
    words of an utterance still line up with it. Overlapping spans are fine.
    """
    _check_mask(mask)
    _check_spans(text, spans)
    if not spans:
        return text
    chars = list(text)
    for span in spans:
        for i in range(span.start, span.end):
            if chars[i].isalnum():
                chars[i] = mask
    return "".join(chars)


def _merge(spans: Sequence[Span]) -> list[Span]:
    """Overlapping or touching spans of one kind become one."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if out and out[-1].kind == span.kind and span.start <= out[-1].end:
            last = out.pop()
            span = Span(last.start, max(last.end, span.end), span.kind)
        out.append(span)
    return out


def _align_words(text: str, words: Sequence[UtteranceWord]) -> list[tuple[int, int] | None]:
    """Where each word's (stripped) text sits in ``text``, in order; None if not found."""
    out: list[tuple[int, int] | None] = []
    pos = 0
    lowered = text.lower()
    for w in words:
        core = w.text.strip()
        if not core:
            out.append(None)
            continue
        at = text.find(core, pos)
        if at < 0:
            at = lowered.find(core.lower(), pos)
        if at < 0:
            out.append(None)
            continue
        out.append((at, at + len(core)))
        pos = at + len(core)
    return out


def _looks_numeric(word: str) -> bool:
    w = word.strip().lower()
    return (
        any(c.isdigit() for c in w)
        or "@" in w
        or any(t in NUMBER_WORDS for t in re.findall(r"[a-z]+", w))
    )


def redact_utterance(
    u: Utterance, spans: Sequence[Span], *, mask: str = "#"
) -> tuple[Utterance, list[TimeSpan]]:
    """``u`` with its text and words masked, and when each redacted span was spoken.

    Each word is found in the text in order; the characters of it that fall inside a
    span are masked and its timings are kept. The time span of a text span runs from the
    first to the last word it touches. A word that cannot be found in the text (the
    engine changed it) is masked whole if it looks like a number or address, so a
    mismatch never leaks; without word timings the whole utterance is the time span.
    """
    _check_mask(mask)
    _check_spans(u.text, spans)
    if not spans:
        return u, []
    spans = _merge(spans)
    text = redact(u.text, spans, mask=mask)
    places = _align_words(u.text, u.words)
    words: list[UtteranceWord] = []
    touched: dict[int, list[UtteranceWord]] = {}
    for w, place in zip(u.words, places, strict=True):
        if place is None:
            if _looks_numeric(w.text):
                masked = "".join(mask if c.isalnum() else c for c in w.text)
                words.append(replace(w, text=masked))
                touched.setdefault(_nearest(spans, u.words, w), []).append(w)
            else:
                words.append(w)
            continue
        a, b = place
        hits = [k for k, s in enumerate(spans) if s.start < b and a < s.end]
        if not hits:
            words.append(w)
            continue
        lead = len(w.text) - len(w.text.lstrip())
        core = u.text[a:b]
        masked_core = "".join(
            mask if ch.isalnum() and any(s.start <= a + i < s.end for s in spans) else ch
            for i, ch in enumerate(core)
        )
        words.append(replace(w, text=w.text[:lead] + masked_core + w.text[lead + len(core) :]))
        for k in hits:
            touched.setdefault(k, []).append(w)
    times: list[TimeSpan] = []
    for k, span in enumerate(spans):
        hit = touched.get(k)
        if hit:
            times.append(
                TimeSpan(min(w.start_ms for w in hit), max(w.end_ms for w in hit), span.kind)
            )
        elif not u.words or all(p is None for p in places):
            times.append(TimeSpan(u.start_ms, u.end_ms, span.kind))
    return replace(u, text=text, words=tuple(words)), times


def _nearest(spans: Sequence[Span], words: Sequence[UtteranceWord], word: UtteranceWord) -> int:
    """The span an unplaced word most likely belongs to: by its position among the words."""
    if len(spans) == 1:
        return 0
    index = next(i for i, w in enumerate(words) if w is word)
    ratio = index / max(1, len(words) - 1)
    centre = [(s.start + s.end) / 2 for s in spans]
    total = max(1.0, max(centre))
    return min(range(len(spans)), key=lambda k: abs(centre[k] / total - ratio))


def redact_audio(
    pcm: np.ndarray,
    sample_rate: int,
    spans: Sequence[TimeSpan],
    *,
    mode: Literal["silence", "tone"] = "silence",
    tone_hz: float = 1000.0,
    offset_ms: int = 0,
) -> np.ndarray:
    """A copy of ``pcm`` with each time span replaced by silence or a tone.

    ``pcm`` is integer or float samples (mono, or samples × channels) whose first sample
    is ``offset_ms`` from the stream start, the clock of ``TimeSpan``; spans outside it
    are clipped. The tone is at -12 dBFS (a quarter of full scale) and its phase follows
    the stream clock, so a span redacted in two pieces sounds like one beep.
    """
    if sample_rate <= 0:
        raise RedactionError(f"sample rate {sample_rate} is not positive")
    if mode not in ("silence", "tone"):
        raise RedactionError(f"audio redaction mode {mode!r} is not 'silence' or 'tone'")
    if mode == "tone" and not 0 < tone_hz < sample_rate / 2:
        raise RedactionError(
            f"tone of {tone_hz} Hz is not between 0 and {sample_rate / 2:g} Hz (Nyquist)"
        )
    if pcm.ndim not in (1, 2):
        raise RedactionError(f"PCM must be samples or samples × channels, not {pcm.ndim}-D")
    if pcm.dtype.kind not in "if":
        raise RedactionError(f"PCM sample type {pcm.dtype} is not signed integer or float")
    out = pcm.copy()
    amplitude = 0.25 * np.iinfo(pcm.dtype).max if pcm.dtype.kind == "i" else 0.25
    first = offset_ms * sample_rate // 1000
    for span in spans:
        a = max(0, span.start_ms * sample_rate // 1000 - first)
        b = min(len(out), -(-span.end_ms * sample_rate // 1000) - first)
        if b <= a:
            continue
        if mode == "silence":
            out[a:b] = 0
            continue
        t = np.arange(first + a, first + b, dtype=np.float64) / sample_rate
        wave = amplitude * np.sin(2 * np.pi * tone_hz * t)
        if pcm.dtype.kind == "i":
            wave = np.round(wave)
        wave = wave.astype(pcm.dtype)
        out[a:b] = wave if out.ndim == 1 else wave[:, None]
    return out


# --------------------------------------------------------------------------------------
# Numbers split across utterances (used by RedactingSink)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigitEdges:
    """What the edges of a text say about a number that may go on in a neighbour.

    ``leading``: the text starts with digits (after hesitations and punctuation).
    ``trailing``: digits in the run that ends the text (a dangling "double"/"triple"
    counts one); ``exposed`` of them are not inside a card span yet. ``whole``: the text
    is one run, edge to edge, holding ``digits`` digits.
    """

    leading: bool = False
    trailing: int = 0
    exposed: int = 0
    whole: bool = False
    digits: int = 0


def digit_edges(text: str, spans: Sequence[Span] = ()) -> DigitEdges:
    """The digits at the start and end of ``text`` that a neighbour could continue."""
    t = _Text(text)
    runs = t.loose_runs
    cards = [s for s in spans if s.kind is SensitiveKind.CARD_NUMBER]
    leading = bool(runs) and t.only_filler(0, runs[0].start)
    # a dangling "double"/"triple" at the end waits for its digit in the next utterance
    end = len(text)
    dangling = next(
        (k for k in range(len(t.tokens) - 1, -1, -1) if t.tokens[k].word not in HESITATIONS),
        None,
    )
    if dangling is not None and t.tokens[dangling].word in REPEATS:
        end = t.tokens[dangling].start
        if not runs:
            leading = t.only_filler(0, end)
    else:
        dangling = None
    last_run = runs[-1] if runs and t.only_filler(runs[-1].end, end) else None
    if last_run is not None and _price_or_time(text, last_run.start):
        last_run = None  # "$49.99", "at 10:30": nothing a card number continues
    trailing = exposed = 0
    if last_run is not None:
        trailing = len(last_run.digits)
        exposed = sum(
            len(c.digits)
            for c in last_run.chunks
            if not any(s.start <= c.start and c.end <= s.end for s in cards)
        )
    if dangling is not None:
        trailing += 1
        tok = t.tokens[dangling]
        exposed += not any(s.start <= tok.start and tok.end <= s.end for s in cards)
    if last_run is not None:
        whole = leading and last_run is runs[0]
    else:
        whole = leading and dangling is not None and not runs
    return DigitEdges(leading, trailing, exposed, whole, trailing if whole else 0)


def _price_or_time(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    if before[-1:] in tuple(_CURRENCY):
        return True
    return text[start - 1 : start] == ":" and text[start - 2 : start - 1].isdigit()


def find_cards_across(texts: Sequence[str]) -> list[list[Span]]:
    """Card numbers that only exist when consecutive utterances are read as one.

    ``texts`` are one channel's utterances in order. Returns, for each text, the card
    spans of numbers that cross at least one boundary ("4111 1111" then "1111 1111").
    """
    if len(texts) < 2:
        return [[] for _ in texts]
    offsets: list[int] = []
    pos = 0
    for text in texts:
        offsets.append(pos)
        pos += len(text) + 1
    joined = " ".join(texts)
    out: list[list[Span]] = [[] for _ in texts]
    for start, end, kind in _cards(_Text(joined)):
        parts = []
        for k, text in enumerate(texts):
            a, b = max(start, offsets[k]), min(end, offsets[k] + len(text))
            if a < b and any(ch.isalnum() for ch in joined[a:b]):
                parts.append((k, Span(a - offsets[k], b - offsets[k], kind)))
        if len(parts) > 1:
            for k, span in parts:
                out[k].append(span)
    return out


__all__ = [
    "ALL_KINDS",
    "DEFAULT_POLICY",
    "IBAN_LENGTHS",
    "OUTPUT_MODES",
    "PRIORITY",
    "DigitEdges",
    "OutputMode",
    "RedactionError",
    "RedactionPolicy",
    "SensitiveKind",
    "Span",
    "TimeSpan",
    "digit_edges",
    "find_cards_across",
    "find_sensitive",
    "iban_ok",
    "luhn_ok",
    "redact",
    "redact_audio",
    "redact_utterance",
]
