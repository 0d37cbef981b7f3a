"""Random strings that match a regular expression: the `pattern` of a JSON Schema string.

A pattern is parsed once into a small tree of generators; each string is then
a handful of draws from the caller's random generator, so a seeded stream
repeats. The supported subset is what schemas use in practice:

- literals, ``\\.``-style escapes, ``\\t \\n \\r \\f \\v \\0``, ``\\xHH``, ``\\uHHHH``
- ``.``, ``\\d \\w \\s`` and ``\\D \\W \\S``, classes ``[a-z0-9_]`` and ``[^...]``
- quantifiers ``* + ? {n} {n,} {,m} {n,m}``, lazy or possessive (``*?``, ``*+``) alike;
  an open-ended one repeats at most ``UNBOUNDED_EXTRA`` times more than its minimum
- groups ``(...)``, ``(?:...)``, ``(?P<name>...)``, and alternation ``|``
- anchors ``^`` and ``$`` at the ends

Anything else (backreferences, lookarounds, ``\\b``, inline flags) is refused
with the position, rather than generating strings that might not match.
Negated sets draw from printable ASCII.

Why not a library: exrex draws from the global ``random`` module, which a
stream cannot seed without touching every other user of it; rstr re-parses the
pattern with the standard library's private regex parser on every call. Both
would still need a check that each string matches, which ``PatternGenerator``
leaves to its caller (``streams/schema.py`` checks every string with ``re``).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from random import Random

UNBOUNDED_EXTRA = 8  # `a*` repeats 0-8 times, `a+` 1-9, `a{3,}` 3-11

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
DIGITS = string.digits
WORD = string.ascii_letters + string.digits + "_"
SPACE = " \t\n\r\f\v"
SHORTHANDS = {"d": DIGITS, "w": WORD, "s": SPACE,
              "D": "".join(c for c in PRINTABLE if c not in DIGITS),
              "W": "".join(c for c in PRINTABLE if c not in WORD),
              "S": "".join(c for c in PRINTABLE if c not in SPACE)}
ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}
DOT = string.ascii_letters + string.digits  # `.` matches more; these read well in a dashboard

Emit = Callable[[Random, list], None]  # appends one match's pieces to the list


class PatternError(ValueError):
    """A pattern this generator cannot produce strings for, and where in it."""

    def __init__(self, pattern: str, position: int, message: str) -> None:
        super().__init__(f"{message} at position {position} of {pattern!r}")
        self.position = position


class PatternGenerator:
    """A compiled pattern: ``generate(rng)`` gives a string the pattern matches (see the module's subset)."""

    __slots__ = ("pattern", "_emit")

    def __init__(self, pattern: str, emit: Emit) -> None:
        self.pattern = pattern
        self._emit = emit

    def generate(self, rng: Random) -> str:
        """One random string matched by the pattern."""
        out: list[str] = []
        self._emit(rng, out)
        return "".join(out)


def compile_pattern(pattern: str) -> PatternGenerator:
    """Parse ``pattern`` once; raises PatternError for what the subset does not cover."""
    parser = _Parser(pattern)
    emit = parser.alternation()
    if parser.pos < len(pattern):  # only an unmatched ')' stops the top level early
        raise parser.error("unbalanced ')'")
    return PatternGenerator(pattern, emit)


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def error(self, message: str, position: int | None = None) -> PatternError:
        return PatternError(self.text, self.pos if position is None else position, message)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.pos += 1
        return char

    def alternation(self) -> Emit:
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        if len(options) == 1:
            return options[0]

        def one_of(rng: Random, out: list) -> None:
            options[int(rng.random() * len(options))](rng, out)
        return one_of

    def sequence(self) -> Emit:
        items: list[Emit] = []
        while self.peek() not in ("", "|", ")"):
            start = self.pos
            atom = self.atom()
            items.append(self.quantified(atom, start))

        def each(rng: Random, out: list) -> None:
            for item in items:
                item(rng, out)
        return each

    def atom(self) -> Emit:
        char = self.take()
        if char == "(":
            return self.group()
        if char == "[":
            return _choose(self.char_class())
        if char == ".":
            return _choose(DOT)
        if char in ("^", "$"):
            return _nothing
        if char == "\\":
            return _choose(self.escape(in_class=False))
        if char in "*+?":
            raise self.error("nothing to repeat", self.pos - 1)
        if char == "{" and self.quantifier_at(self.pos - 1) is not None:
            raise self.error("nothing to repeat", self.pos - 1)
        return _literal(char)

    def group(self) -> Emit:
        start = self.pos - 1
        if self.text.startswith("?:", self.pos):
            self.pos += 2
        elif self.text.startswith("?P<", self.pos):
            end = self.text.find(">", self.pos)
            if end < 0:
                raise self.error("unterminated group name", start)
            self.pos = end + 1
        elif self.peek() == "?":
            raise self.error("lookarounds, inline flags and other (?...) groups are not supported", start)
        inner = self.alternation()
        if self.take() != ")":
            raise self.error("missing ')'", start)
        return inner

    def char_class(self) -> str:
        start = self.pos - 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        chars: list[str] = []
        first = True
        while True:
            char = self.take()
            if char == "":
                raise self.error("unterminated character class", start)
            if char == "]" and not first:
                break
            first = False
            if char == "\\":
                escaped = self.escape(in_class=True)
                if len(escaped) > 1:  # \d, \w, \s: a set, never the end of a range
                    chars.append(escaped)
                    continue
                char = escaped
            if self.peek() == "-" and self.text[self.pos + 1:self.pos + 2] not in ("]", ""):
                self.pos += 1
                end = self.take()
                if end == "\\":
                    end = self.escape(in_class=True)
                    if len(end) > 1:
                        raise self.error("a range cannot end in a class such as \\d", self.pos - 2)
                if ord(end) < ord(char):
                    raise self.error(f"bad range {char}-{end}", self.pos - 3)
                chars.append("".join(chr(c) for c in range(ord(char), ord(end) + 1)))
            else:
                chars.append(char)
        members = "".join(dict.fromkeys("".join(chars)))  # each once, in order: draws stay uniform
        if negated:
            members = "".join(c for c in PRINTABLE if c not in members)
        if not members:
            raise self.error("a character class that matches nothing", start)
        return members

    def escape(self, in_class: bool) -> str:
        """The characters an escape stands for (one, or a set for \\d \\w \\s ...)."""
        start = self.pos - 1
        char = self.take()
        if char == "":
            raise self.error("a pattern cannot end with '\\'", start)
        if char in SHORTHANDS:
            if in_class and char in "DWS":
                raise self.error(f"\\{char} inside [...] is not supported", start)
            return SHORTHANDS[char]
        if char in ESCAPES:
            return ESCAPES[char]
        if char in ("x", "u"):
            width = 2 if char == "x" else 4
            digits = self.text[self.pos:self.pos + width]
            if len(digits) != width or any(c not in string.hexdigits for c in digits):
                raise self.error(f"\\{char} needs {width} hex digits", start)
            self.pos += width
            return chr(int(digits, 16))
        if char.isdigit() or char in "bBAZzkpPc":
            raise self.error(f"\\{char} (backreferences, word boundaries, classes by property) is not supported",
                             start)
        if char.isalnum():
            raise self.error(f"unknown escape \\{char}", start)
        return char  # \. \* \\ \/ ...: the character itself

    def quantifier_at(self, position: int) -> tuple[int, int | None, int] | None:
        """A {n}, {n,}, {,m} or {n,m} quantifier at ``position``: (min, max or None, end), else None.

        ``{,m}`` is {0,m}, as Python's ``re`` (which checks the strings) reads it."""
        end = self.text.find("}", position)
        if end < 0:
            return None
        low, comma, high = self.text[position + 1:end].partition(",")
        if not (low.isdigit() or (comma and high)) or (high and not high.isdigit()):
            return None
        low_count = int(low) if low else 0
        return low_count, (int(high) if high else None) if comma else low_count, end + 1

    def quantified(self, atom: Emit, start: int) -> Emit:
        char = self.peek()
        if char == "*":
            low, high = 0, None
            self.pos += 1
        elif char == "+":
            low, high = 1, None
            self.pos += 1
        elif char == "?":
            low, high = 0, 1
            self.pos += 1
        elif char == "{" and (braces := self.quantifier_at(self.pos)) is not None:
            low, high, self.pos = braces
            if high is not None and high < low:
                raise self.error(f"the quantifier {{{low},{high}}} has min > max", start)
        else:
            return atom
        if self.peek() in ("?", "+"):  # lazy or possessive: matches the same strings
            self.pos += 1
        if self.peek() in ("*", "+", "?"):
            raise self.error("multiple repeat", self.pos)
        top = low + UNBOUNDED_EXTRA if high is None else high

        def repeat(rng: Random, out: list) -> None:
            for _ in range(rng.randint(low, top)):
                atom(rng, out)
        return repeat


def _nothing(rng: Random, out: list) -> None:
    return None


def _literal(char: str) -> Emit:
    def literal(rng: Random, out: list) -> None:
        out.append(char)
    return literal


def _choose(chars: str) -> Emit:
    if len(chars) == 1:
        return _literal(chars)

    def choose(rng: Random, out: list) -> None:
        out.append(chars[int(rng.random() * len(chars))])
    return choose
