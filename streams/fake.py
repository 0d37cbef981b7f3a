"""$faker: realistic names, plates, addresses... from the Faker library, cheap enough for every frame.

``{$faker: license_plate}`` or ``{$faker: [pyfloat, {min_value: 0, max_value: 100}]}``
names any provider method of Faker (https://faker.readthedocs.io) and its
keyword arguments. Everything that can go wrong is found when the config
loads: an unknown method or argument (with a suggestion), arguments the
method refuses, a value that is not JSON. The method is called once then,
with the arguments given.

Why a pool: one Faker call costs 3 to 150 µs (``name`` walks a weighted table
of thousands of names on every call), while a whole stats frame of ``$int``
renders in about 5 µs. So each ``$faker`` field keeps a pool of
``POOL_SIZE`` values, filled lazily: a frame draws a slot with the
timeline's random generator, and an empty slot is filled by one Faker call
drawing from that same generator. After the first few thousand frames a
field costs what a ``$choice`` costs. Values repeat within a field (1024
distinct plates or names per field), which a dashboard does not notice; an
identifier that must never repeat is a job for ``$seq``, ``$counter`` or
``{$schema: {type: string, format: uuid}}``.

Why the random generator is swapped, not seeded: Faker instances are heavy
(50-60 ms and a few MB each, per locale), and ``seed_instance`` costs as much
as a whole frame. One Faker per locale is kept for the process, and before
each call its ``random`` (Faker's public property for the ``random.Random``
it draws from) is set to the calling timeline's generator. Rendering is
synchronous, so no other call can interleave. A seeded config then gives the
same values run after run, per-client timelines their own sequences, and a
client costs no memory at all.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import difflib
import functools
import inspect
import uuid
from collections.abc import Callable, Mapping
from random import Random
from typing import Any

from faker import Faker
from faker.config import AVAILABLE_LOCALES

from streams.jsontext import dumps

DEFAULT_LOCALE = "en_US"
POOL_SIZE = 1024  # distinct values a $faker field shows at most


class FakerError(ValueError):
    """A $faker problem, with the path inside its arguments (() for the method name)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def locale_problem(locale: Any) -> str | None:
    """Why ``locale`` is not a Faker locale, with a suggestion; None when it is one."""
    if isinstance(locale, str) and locale in AVAILABLE_LOCALES:
        return None
    written = str(locale).replace("-", "_")
    # zh_cn, en-GB: only the case or the dash is wrong; else the closest name
    hint = ([name for name in AVAILABLE_LOCALES if name.lower() == written.lower()]
            or difflib.get_close_matches(written, AVAILABLE_LOCALES, n=1, cutoff=0.6))
    return (f"unknown Faker locale {locale!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
            + " (a language_COUNTRY code such as en_US, zh_CN, de_DE, ja_JP)")


@functools.cache
def faker_for(locale: str) -> Faker:
    """The process's one Faker for ``locale`` (building one takes tens of milliseconds)."""
    return Faker(locale)


@functools.cache
def methods_of(locale: str) -> dict[str, Callable[..., Any]]:
    """Every provider method of a locale's Faker, by name: what ``$faker`` may call.

    Taken from the providers, not from the Faker object, so that Faker's own
    machinery (``seed``, ``add_provider``, ``set_formatter``) cannot be named.
    The first provider holding a name wins, as it does in Faker itself.
    """
    methods: dict[str, Callable[..., Any]] = {}
    for provider in faker_for(locale).get_providers():
        for name in dir(provider):
            if not name.startswith("_") and name not in methods:
                member = getattr(provider, name)
                if callable(member) and inspect.ismethod(member):
                    methods[name] = member
    return methods


def parse_args(args: Any) -> tuple[str, dict[str, Any]]:
    """``license_plate`` or ``[pyfloat, {min_value: 0}]`` as (method name, keyword arguments)."""
    if isinstance(args, str):
        return args, {}
    if isinstance(args, (list, tuple)) and len(args) in (1, 2) and isinstance(args[0], str):
        kwargs = args[1] if len(args) == 2 else {}
        if isinstance(kwargs, Mapping) and all(isinstance(key, str) for key in kwargs):
            return args[0], dict(kwargs)
        raise FakerError((1,), f"the arguments are a mapping of keyword arguments, e.g. {{min_value: 0}}, "
                               f"got {kwargs!r}")
    raise FakerError((), f"$faker takes a method name (license_plate) or [method, {{arguments}}] "
                         f"([pyfloat, {{min_value: 0, max_value: 100}}]), got {args!r}")


class FakerLeaf:
    """A compiled ``$faker`` field: draws a pool slot per frame, fills an empty one with one Faker call."""

    __slots__ = ("fake", "method", "kwargs", "pool", "tried")

    def __init__(self, fake: Faker, method: Callable[..., Any], kwargs: dict[str, Any], tried: str) -> None:
        self.fake = fake
        self.method = method
        self.kwargs = kwargs
        self.pool: list[str | None] = [None] * POOL_SIZE  # JSON text of each value drawn so far
        self.tried = tried  # the value of the load-time trial, for a call that fails later

    def __call__(self, state: list, rng: Random) -> str:
        slot = int(rng.random() * POOL_SIZE)
        text = self.pool[slot]
        if text is None:
            self.fake.random = rng  # the timeline's generator: reproducible with a seed, no per-call seeding
            try:
                text = dumps(json_value(self.method(**self.kwargs)))
            except Exception:  # noqa: BLE001 - a provider that worked at load time failing on some draw must
                text = self.tried  # not stop the stream's clock: the slot keeps the trial's value instead
            self.pool[slot] = text
        return text


def compile_faker(args: Any, locale: str) -> FakerLeaf:
    """A ``$faker`` field ready to render; raises FakerError for anything that would fail at the first frame."""
    name, kwargs = parse_args(args)
    methods = methods_of(locale)
    method = methods.get(name)
    if method is None:
        hint = difflib.get_close_matches(name, list(methods), n=1)
        raise FakerError((0,) if not isinstance(args, str) else (),
                         f"unknown Faker method {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                         + f" (any provider method of locale {locale}: "
                           "https://faker.readthedocs.io/en/stable/providers.html)")
    _check_arguments(name, method, kwargs)
    fake = faker_for(locale)
    fake.random = Random(0)  # the trial draws from a generator of its own, not from a stream's
    try:
        value = method(**kwargs)
    except Exception as e:  # noqa: BLE001 - a provider may raise anything for arguments it refuses; report it
        raise FakerError((1,) if kwargs else (), f"{name}({_show_kwargs(kwargs)}) failed when tried: "
                                                 f"{type(e).__name__}: {e}") from None
    try:
        tried = dumps(json_value(value))
    except TypeError as e:
        raise FakerError((), f"{name} returns {type(value).__name__}, which cannot be sent as JSON ({e}); "
                             "pick a method that returns text, numbers, dates or lists") from None
    return FakerLeaf(fake, method, kwargs, tried)


def _check_arguments(name: str, method: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Unknown or missing keyword arguments, named, with the ones the method takes."""
    parameters = inspect.signature(method).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [p for p, spec in parameters.items() if spec.kind is not inspect.Parameter.VAR_POSITIONAL]
    listed = f"{name} takes: {', '.join(accepted)}" if accepted else f"{name} takes no arguments"
    for key in kwargs:
        if key not in accepted:
            hint = difflib.get_close_matches(key, accepted, n=1)
            raise FakerError((1, key), f"unknown argument {key!r} of {name}"
                                       + (f"; did you mean {hint[0]!r}?" if hint else "") + f" ({listed})")
    missing = [p for p, spec in parameters.items()
               if spec.default is inspect.Parameter.empty and p not in kwargs
               and spec.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    if missing:
        raise FakerError((), f"{name} needs the argument {missing[0]!r}: write [{name}, {{{missing[0]}: ...}}] "
                             f"({listed})")


def _show_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in kwargs.items())


def json_value(value: Any) -> Any:
    """A Faker value as a JSON value: dates as ISO text, Decimal as a number, bytes as base64, sets as lists.

    Raises TypeError for anything else that JSON cannot hold.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, (set, frozenset)):  # a set's order changes from run to run: sort it, for seeds
        return sorted((json_value(item) for item in value), key=dumps)
    raise TypeError(f"{type(value).__name__} is not a JSON value")
