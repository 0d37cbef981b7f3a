"""The $-generator mini-language: a template compiled once, rendered fast.

A template is any JSON-like value. A mapping with a single ``$name`` key is a
generator, evaluated every frame::

    {$int: [0, 1000000]}                 uniform integer, both ends included
    {$float: [0, 100, 2]}                uniform float, rounded to 2 digits
    {$choice: [low, mid, high]}          one of the options (options may hold generators)
    {$cycle: [first, second, third]}     the options in turn, from the first, looping
    {$walk: {start: 50, step: 5, min: 0, max: 100}}   bounded random walk
    {$counter: {start: 0, step: 1}}      monotonic counter
    {$now: iso}  /  {$now: epoch_ms}     the current time
    {$seq: true}                         frame number, starting at 1
    {$literal: {$int: 1}}                the value as-is, without evaluation
    {$faker: license_plate}              a realistic value from Faker (streams/fake.py)
    {$schema: {type: object, ...}}       a new valid instance of a JSON Schema (streams/schema.py)

Compiling turns the template into one format string of literal JSON text with
a hole per generator, so rendering a frame is a handful of random draws and one
``str.format``: no tree walk and no ``json.dumps`` per frame. Generator state
($seq, $counter, $walk) lives in a small list owned by each timeline, so
per-client timelines start fresh and shared ones advance together. Nothing here
evaluates code.
"""

from __future__ import annotations

import datetime
import difflib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from random import Random
from typing import Any

from streams.fake import DEFAULT_LOCALE, FakerError, compile_faker
from streams.jsontext import _dumps_str, dumps, js_key, js_number
from streams.schema import SchemaError, compile_schema

State = list  # slot 0: frame number; further slots: $counter / $walk values
Leaf = Callable[[State, Random], str]
Part = str | Leaf

GENERATORS = ("$int", "$float", "$choice", "$cycle", "$walk", "$counter", "$now", "$seq", "$literal", "$faker",
              "$schema")


class TemplateError(ValueError):
    """A template problem, with the path inside the template where it is."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.files: frozenset[Path] = frozenset()  # the schema files read so far (a watcher waits for a fix)


class CompiledTemplate:
    """A template ready to render frames: literal JSON text with generator holes."""

    __slots__ = ("_format", "_leaves", "_initial_state", "source_text", "files", "_int_ranges", "_int_format",
                 "_int_spans", "_mixed_format", "_mixed_plan")

    def __init__(self, parts: list[Part], initial_state: list[Any], source_text: str = "",
                 files: frozenset[Path] = frozenset()) -> None:
        self.source_text = source_text  # the template it was compiled from, to tell edits apart
        self.files = files  # the schema files its $schema generators read
        self._format = "".join(p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else "{}"
                               for p in parts)
        self._leaves = tuple(p for p in parts if not isinstance(p, str))
        self._initial_state = tuple(initial_state)
        # every generator an $int (the seed's stats template): render them in one comprehension
        # instead of a call per leaf; the same draws in the same order, so seeds still reproduce
        self._int_ranges = (tuple((leaf.lo, leaf.span) for leaf in self._leaves)
                            if self._leaves and all(isinstance(leaf, _IntLeaf) for leaf in self._leaves)
                            else None)
        # ... straight into UTF-8 bytes with %d holes: no str.format over CJK text, no encode
        self._int_format = (b"".join(p.encode("utf-8").replace(b"%", b"%%") if isinstance(p, str) else b"%d"
                                     for p in parts) if self._int_ranges is not None else None)
        # ... and when every range starts at 0, %d truncates the float draw itself: int(u * span) without
        # an int() call per leaf (half the cost of a frame), the same numbers for the same seed
        self._int_spans = (tuple(span for _, span in self._int_ranges)
                           if self._int_ranges is not None and all(lo == 0 for lo, _ in self._int_ranges) else None)
        # other generators beside $int from 0 (a stats template with $faker fields): the same %d trick for
        # those $int, a call for the others, in one %-format; a call per $int would cost twice the frame
        inline = [isinstance(leaf, _IntLeaf) and leaf.lo == 0 for leaf in self._leaves]
        mixed = self._int_ranges is None and any(inline)
        holes = iter(inline)
        self._mixed_format = ("".join(p.replace("%", "%%") if isinstance(p, str) else "%d" if next(holes) else "%s"
                                      for p in parts) if mixed else None)
        self._mixed_plan = (tuple((leaf.span, None) if is_int else (0, leaf)
                                  for leaf, is_int in zip(self._leaves, inline, strict=True)) if mixed else None)

    def new_state(self) -> State:
        """Fresh generator state for one timeline."""
        return list(self._initial_state)

    def render(self, state: State, rng: Random) -> str:
        """The next frame of the timeline that owns ``state``, as JSON text."""
        return self.render_utf8(state, rng).decode("utf-8")

    def render_utf8(self, state: State, rng: Random) -> bytes:
        """The next frame of the timeline that owns ``state``, as UTF-8 JSON (what goes on the wire)."""
        state[0] += 1
        if self._int_spans is not None:
            draw = rng.random
            return self._int_format % tuple([draw() * span for span in self._int_spans])
        if self._int_format is not None:
            draw = rng.random
            return self._int_format % tuple([lo + int(draw() * span) for lo, span in self._int_ranges])
        if self._mixed_plan is not None:
            draw = rng.random
            return (self._mixed_format % tuple([draw() * span if leaf is None else leaf(state, rng)
                                                for span, leaf in self._mixed_plan])).encode("utf-8")
        return self._format.format(*[leaf(state, rng) for leaf in self._leaves]).encode("utf-8")

    def render_part(self, state: State, rng: Random) -> str:
        """Render without counting a frame (a $choice option inside a frame)."""
        return self._format.format(*[leaf(state, rng) for leaf in self._leaves])


def bind_params(template: Any, params: Mapping[str, str], path: tuple = ()) -> Any:
    """The template with each ``{$param: name}`` replaced by that path parameter's value (a stream's `params`)."""
    if isinstance(template, Mapping):
        if len(template) == 1 and "$param" in template:
            name = template["$param"]
            if not isinstance(name, str) or name not in params:
                known = ", ".join(params) or "none: set params: {name: value} on the stream"
                raise TemplateError(path + ("$param",), f"no path parameter {name!r}; this stream's params: {known}")
            return {"$literal": params[name]}
        if len(template) == 1 and "$literal" in template:
            return template
        return {key: bind_params(value, params, path + (key,)) for key, value in template.items()}
    if isinstance(template, (list, tuple)):
        return [bind_params(value, params, path + (i,)) for i, value in enumerate(template)]
    return template


def compile_template(template: Any, *, faker_locale: str = DEFAULT_LOCALE,
                     base_path: Path | None = None) -> CompiledTemplate:
    """Compile a template, raising TemplateError for the first problem found.

    ``faker_locale``: the language and country of ``$faker`` values; ``base_path``: the folder that
    ``$schema`` files are relative to (the config file's).
    """
    compiler = _Compiler(faker_locale, base_path)
    try:
        parts = compiler.compile(template, ())
    except TemplateError as e:
        e.files |= compiler.files
        raise
    # what the template sends: a new locale changes the values of its $faker fields, an edited file its $schema
    source = [template, faker_locale] if compiler.uses_faker else template
    source = [source, compiler.schema_sources] if compiler.schema_sources else source
    return CompiledTemplate(parts, compiler.initial_state, json.dumps(source, sort_keys=True, default=str),
                            frozenset(compiler.files))


class _Compiler:
    def __init__(self, faker_locale: str, base_path: Path | None) -> None:
        self.initial_state: list[Any] = [0]  # slot 0 is the frame number
        self.faker_locale = faker_locale
        self.uses_faker = False
        self.base_path = base_path
        self.files: set[Path] = set()  # schema files read by $schema
        self.schema_sources: list[str] = []  # what they held

    def new_slot(self, initial: Any) -> int:
        self.initial_state.append(initial)
        return len(self.initial_state) - 1

    def compile(self, node: Any, path: tuple) -> list[Part]:
        if isinstance(node, Mapping):
            generator = [k for k in node if isinstance(k, str) and k.startswith("$")]
            if generator:
                if len(node) != 1:
                    raise TemplateError(path, f"a generator mapping holds only its one key, "
                                              f"found {generator[0]!r} beside other keys")
                return [self.generator(generator[0], node[generator[0]], path + (generator[0],))]
            parts: list[Part] = ["{"]
            for i, (key, value) in enumerate(node.items()):
                parts.append(("," if i else "") + _dumps_str(js_key(key)) + ":")
                parts += self.compile(value, path + (js_key(key),))
            return _merge(parts + ["}"])
        if isinstance(node, (list, tuple)):
            parts = ["["]
            for i, value in enumerate(node):
                if i:
                    parts.append(",")
                parts += self.compile(value, path + (i,))
            return _merge(parts + ["]"])
        return [_constant(node, path)]

    def generator(self, name: str, args: Any, path: tuple) -> Part:
        make = _MAKERS.get(name)
        if make is None:
            hint = difflib.get_close_matches(name, GENERATORS, n=1)
            raise TemplateError(path, f"unknown generator {name!r}"
                                      + (f"; did you mean {hint[0]!r}?" if hint else "")
                                      + f" (known: {', '.join(GENERATORS)})")
        return make(self, args, path)


def _merge(parts: list[Part]) -> list[Part]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


def _constant(value: Any, path: tuple) -> str:
    try:
        return dumps(value)
    except TypeError as e:
        raise TemplateError(path, f"{e}: use a string, number, boolean, null, list or mapping") from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pair(args: Any, path: tuple, name: str, integers: bool, allow_digits: bool = False) -> tuple:
    kind = "integers" if integers else "numbers"
    shape = "[min, max]" if not allow_digits else "[min, max] or [min, max, digits]"
    ok_len = (2, 3) if allow_digits else (2,)
    if not isinstance(args, (list, tuple)) or len(args) not in ok_len:
        raise TemplateError(path, f"{name} takes {shape}, got {args!r}")
    lo, hi = args[0], args[1]
    check = (lambda v: isinstance(v, int) and not isinstance(v, bool)) if integers else _number
    if not (check(lo) and check(hi)):
        raise TemplateError(path, f"{name} bounds must be {kind}, got {args!r}")
    if lo > hi:
        raise TemplateError(path, f"{name} min must be <= max, got {args!r}")
    digits = args[2] if len(args) == 3 else None
    if digits is not None and not (isinstance(digits, int) and not isinstance(digits, bool) and 0 <= digits <= 15):
        raise TemplateError(path, f"{name} digits must be an integer from 0 to 15, got {digits!r}")
    return lo, hi, digits


def _make_int(_: _Compiler, args: Any, path: tuple) -> Leaf:
    lo, hi, _digits = _pair(args, path, "$int", integers=True)
    span = hi - lo + 1
    if span <= 1 << 32:
        return _IntLeaf(lo, span)
    return lambda state, rng: str(rng.randint(lo, hi))


class _IntLeaf:
    """An $int generator whose range is small enough for one ``random()`` draw."""

    __slots__ = ("lo", "span")

    def __init__(self, lo: int, span: int) -> None:
        self.lo = lo
        self.span = span

    def __call__(self, state: State, rng: Random) -> str:
        return str(self.lo + int(rng.random() * self.span))


def _make_float(_: _Compiler, args: Any, path: tuple) -> Leaf:
    lo, hi, digits = _pair(args, path, "$float", integers=False, allow_digits=True)
    if digits is None:
        return lambda state, rng: js_number(rng.uniform(lo, hi))
    return lambda state, rng: js_number(round(rng.uniform(lo, hi), digits))


def _make_choice(compiler: _Compiler, args: Any, path: tuple) -> Leaf:
    if not isinstance(args, (list, tuple)) or not args:
        raise TemplateError(path, f"$choice takes a non-empty list of options, got {args!r}")
    compiled = [compiler.compile(option, path + (i,)) for i, option in enumerate(args)]
    if all(len(parts) == 1 and isinstance(parts[0], str) for parts in compiled):
        texts = [parts[0] for parts in compiled]
        return lambda state, rng: texts[int(rng.random() * len(texts))]
    options = [CompiledTemplate(parts, []) for parts in compiled]
    return lambda state, rng: options[int(rng.random() * len(options))].render_part(state, rng)


def _make_cycle(compiler: _Compiler, args: Any, path: tuple) -> Leaf:
    if not isinstance(args, (list, tuple)) or not args:
        raise TemplateError(path, f"$cycle takes a non-empty list of options, got {args!r}")
    options = [CompiledTemplate(compiler.compile(option, path + (i,)), []) for i, option in enumerate(args)]
    slot = compiler.new_slot(0)  # how many options this timeline has rendered

    def cycle(state: State, rng: Random) -> str:
        turn = state[slot]
        state[slot] = turn + 1
        return options[turn % len(options)].render_part(state, rng)

    return cycle


def _make_walk(compiler: _Compiler, args: Any, path: tuple) -> Leaf:
    if not isinstance(args, Mapping):
        raise TemplateError(path, f"$walk takes {{start, step, min, max}}, got {args!r}")
    unknown = set(args) - {"start", "step", "min", "max", "digits"}
    missing = {"start", "step", "min", "max"} - set(args)
    if unknown or missing:
        raise TemplateError(path, "$walk takes {start, step, min, max} and optional digits"
                                  + (f"; unknown {sorted(map(str, unknown))}" if unknown else "")
                                  + (f"; missing {sorted(missing)}" if missing else ""))
    start, step, lo, hi = args["start"], args["step"], args["min"], args["max"]
    if not all(_number(v) for v in (start, step, lo, hi)):
        raise TemplateError(path, f"$walk start, step, min and max must be numbers, got {dict(args)!r}")
    if not lo <= start <= hi or step <= 0:
        raise TemplateError(path, "$walk needs min <= start <= max and step > 0, "
                                  f"got start={start}, step={step}, min={lo}, max={hi}")
    digits = args.get("digits")
    if digits is not None and not (isinstance(digits, int) and not isinstance(digits, bool) and 0 <= digits <= 15):
        raise TemplateError(path + ("digits",), f"must be an integer from 0 to 15, got {digits!r}")
    slot = compiler.new_slot(None)  # None: the walk has not started yet
    integers = all(isinstance(v, int) for v in (start, step, lo, hi)) and digits is None

    def walk(state: State, rng: Random) -> str:
        value = state[slot]
        if value is None:
            value = start
        elif integers:
            value = min(hi, max(lo, value + rng.randint(-step, step)))
        else:
            value = min(hi, max(lo, value + rng.uniform(-step, step)))
            if digits is not None:
                value = round(value, digits)
        state[slot] = value
        return str(value) if integers else js_number(value)

    return walk


def _make_counter(compiler: _Compiler, args: Any, path: tuple) -> Leaf:
    if args is True or args is None:
        args = {}
    if not isinstance(args, Mapping) or set(args) - {"start", "step"}:
        raise TemplateError(path, f"$counter takes {{start, step}} (both optional), got {args!r}")
    start, step = args.get("start", 0), args.get("step", 1)
    if not (_number(start) and _number(step)):
        raise TemplateError(path, f"$counter start and step must be numbers, got {dict(args)!r}")
    slot = compiler.new_slot(0)  # frames counted so far on this timeline
    fmt = str if isinstance(start, int) and isinstance(step, int) else js_number

    def counter(state: State, rng: Random) -> str:
        value = start + step * state[slot]
        state[slot] += 1
        return fmt(value)

    return counter


def _make_now(_: _Compiler, args: Any, path: tuple) -> Leaf:
    if args == "iso":
        return lambda state, rng: '"' + _iso_now() + '"'
    if args == "epoch_ms":
        return lambda state, rng: str(time.time_ns() // 1_000_000)
    raise TemplateError(path, f"$now takes iso or epoch_ms, got {args!r}")


def _iso_now() -> str:
    """The current UTC time as JavaScript's Date.prototype.toISOString writes it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _make_seq(_: _Compiler, args: Any, path: tuple) -> Leaf:
    if args is not True:
        raise TemplateError(path, f"$seq takes true, got {args!r}")
    return lambda state, rng: str(state[0])


def _make_literal(_: _Compiler, args: Any, path: tuple) -> str:
    return _constant(args, path)


def _make_faker(compiler: _Compiler, args: Any, path: tuple) -> Leaf:
    compiler.uses_faker = True
    try:
        return compile_faker(args, compiler.faker_locale)
    except FakerError as e:
        raise TemplateError(path + e.path, e.message) from None


def _make_schema(compiler: _Compiler, args: Any, path: tuple) -> Leaf:
    try:
        generator = compile_schema(args, compiler.base_path)
    except SchemaError as e:
        compiler.files |= e.files
        if e.document is None:  # in the template itself: the path finds its line, the pointer names it
            raise TemplateError(path + e.pointer, f"{e.message} (schema {e.where})") from None
        raise TemplateError(path + (e.ref_at or ()), f"{e.where}: {e.message}") from None
    compiler.files |= generator.files
    if generator.files:
        compiler.schema_sources.append(generator.source_text)
    render = generator.render
    return lambda state, rng: render(rng)


_MAKERS: dict[str, Callable[[_Compiler, Any, tuple], Part]] = {
    "$int": _make_int,
    "$float": _make_float,
    "$choice": _make_choice,
    "$cycle": _make_cycle,
    "$walk": _make_walk,
    "$counter": _make_counter,
    "$now": _make_now,
    "$seq": _make_seq,
    "$literal": _make_literal,
    "$faker": _make_faker,
    "$schema": _make_schema,
}
