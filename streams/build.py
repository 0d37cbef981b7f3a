"""Builds the domain from a config file: every stream's frame source and fault injector, in one place.

``load_config`` is what the server, the live-reload watcher and the tests
call: the schema check (``config.check_config``) and what only the domain
can check (templates compile, mock files load, recorded timing is there) run
on the same file, and every problem of both is reported together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

from config import (
    CheckedConfig,
    ConfigError,
    FaultsConfig,
    Locator,
    RuleConfig,
    Settings,
    StreamConfig,
    add_generated,
    check_config,
    path_param_names,
)
from streams.asyncapi import AsyncApiError, translate_document
from streams.fake import DEFAULT_LOCALE, locale_problem
from streams.faults import FaultInjector
from streams.rules import RuleSet, TemplateOptions, compile_rules
from streams.sources import MockFileError, RandomSource, Source, load_replay_file
from streams.template import TemplateError, bind_params, compile_template

log = logging.getLogger("mockws.build")


@dataclass(frozen=True)
class AppConfig:
    """A config file, validated, with every stream's frame source built from it."""

    file: Path
    settings: Settings
    sources: Mapping[str, Source]  # by stream name
    mock_files: Mapping[str, Path]  # by stream name, replay streams only
    rules: Mapping[str, RuleSet]  # by URL path: endpoints, and streams that answer messages
    schema_files: frozenset[Path] = frozenset()  # the JSON Schema files that $schema generators read

    def watched_files(self) -> list[Path]:
        """The files besides the config whose edits change what is served: mock files and schema files."""
        return [*self.mock_files.values(), *sorted(self.schema_files)]

    @property
    def streams(self) -> tuple[StreamConfig, ...]:
        """The configured streams, in file order."""
        return self.settings.streams


def load_config(path: str | Path) -> AppConfig:
    """Read, validate and build a config file, or raise ConfigError listing every problem."""
    checked = check_config(path)
    schema_files: set[Path] = set()
    if checked.settings is not None and checked.settings.asyncapi is not None:
        schema_files |= add_asyncapi(checked)
    sources, mock_files = build_sources(checked, schema_files)
    rules = build_rules(checked)
    if checked.problems or checked.settings is None:
        raise ConfigError(checked.problems, [*mock_files.values(), *sorted(schema_files)])
    return AppConfig(checked.file, checked.settings, sources, mock_files, rules, frozenset(schema_files))


def bindable_params(params: Any, path: Any) -> dict[str, str]:
    """The values ``{$param: name}`` is bound to when a stream is built: fixed values as they are, and for a
    {name} segment of a parameterized path the placeholder '{name}' (each value is bound per request, see
    ``bind_instance``; binding the placeholder checks the template and rules once, at load)."""
    params = params if isinstance(params, dict) else {}
    bound = {name: value for name, value in params.items() if isinstance(value, str)}
    for name in path_param_names(path if isinstance(path, str) else None):
        bound[name] = "{" + name + "}"
    return bound


def bind_instance(config: AppConfig, stream: StreamConfig) -> tuple[Source, RuleSet | None]:
    """The frame source and rules of one value of a parameterized stream: ``stream`` is its config with the
    concrete path and ``params`` holding the request's values; its template and rules read them."""
    source = config.sources[stream.name]
    if isinstance(source, RandomSource):
        template = compile_template(bind_params(stream.template, stream.params),
                                    faker_locale=stream.faker_locale or config.settings.faker_locale,
                                    base_path=config.file.parent)
        source = RandomSource(template)
    if not (stream.rules or stream.fallback or stream.reply is not None):
        return source, None
    names = [s.name for s in config.streams]
    options = TemplateOptions(stream.faker_locale or config.settings.faker_locale, config.file.parent)
    rules, _problems = compile_rules(_bound_rules(stream.rules, stream.params), stream.fallback, names, stream.reply,
                                     options)
    return source, rules  # the placeholder binding compiled at load, so a value changes no rule's validity


def _bound_rules(rules: tuple[RuleConfig, ...], params: dict[str, str]) -> tuple[RuleConfig, ...]:
    """The rules with each ``{$param: name}`` replaced by its value; raises TemplateError."""
    return tuple(RuleConfig.model_validate(bind_params(rule.model_dump(by_alias=True, exclude_unset=True),
                                                       params, (i,)))
                 for i, rule in enumerate(rules))


def add_asyncapi(checked: CheckedConfig) -> set[Path]:
    """Add the streams and endpoints of the `asyncapi:` document to ``checked``; returns the files it read."""
    block = checked.settings.asyncapi
    document = checked.file.parent / block.file
    try:
        translation = translate_document(document, block.interval_ms)
    except AsyncApiError as e:
        checked.problems += [checked.where.say(("asyncapi", "file"), problem) for problem in e.problems]
        return set(e.files)
    for line in translation.skipped:
        log.warning("%s: %s", block.file, line)
    add_generated(checked, translation.streams, translation.endpoints, block.file)
    return translation.files


def build_rules(checked: CheckedConfig) -> dict[str, RuleSet]:
    """Compile the rules of every endpoint and stream, adding what is wrong to ``checked.problems``."""
    names = [raw.get("name") for _, raw in checked.raw_streams() if isinstance(raw, dict)]
    names = [name for name in names if isinstance(name, str)]
    rules: dict[str, RuleSet] = {}
    owners = [(("endpoints", i), e.path, e.rules, e.fallback, None, {}, None) for i, e in checked.valid_endpoints()]
    owners += [(("streams", i), s.path, s.rules, s.fallback, s.reply, bindable_params(s.params, s.path),
                s.faker_locale)
               for i, s in checked.valid_streams()
               if s.path is not None and (s.rules or s.fallback or s.reply is not None)]
    top_locale = checked.settings.faker_locale if checked.settings is not None else DEFAULT_LOCALE
    for loc, path, rule_configs, fallback, reply, params, locale in owners:
        locale = locale or top_locale
        options = TemplateOptions(locale if locale_problem(locale) is None else DEFAULT_LOCALE,  # reported once,
                                  checked.file.parent)                                          # by build_sources
        if params:
            try:
                rule_configs = _bound_rules(rule_configs, params)
            except TemplateError as e:
                checked.problems.append(checked.where.say(loc + ("rules",) + e.path, e.message))
                continue
        ruleset, problems = compile_rules(rule_configs, fallback, names, reply, options)
        checked.problems.extend(checked.where.say(loc + e.path, e.message) for e in problems)
        rules[path] = ruleset
    return rules


def build_sources(checked: CheckedConfig, schema_files: set[Path] | None = None
                  ) -> tuple[dict[str, Source], dict[str, Path]]:
    """Compile every template and load every mock file, adding what is wrong to ``checked.problems``.

    The schema files that templates read, valid or not, are added to ``schema_files``.

    Works from the streams as written, so a template error is found even when
    another field of the same stream is invalid.
    """
    sources: dict[str, Source] = {}
    files: dict[str, Path] = {}
    where, problems, base = checked.where, checked.problems, checked.file.parent
    default_locale = _faker_locale(checked.data, (), DEFAULT_LOCALE, where, problems)
    for i, raw in checked.raw_streams():
        if not isinstance(raw, dict):
            continue  # reported by the schema check
        loc = ("streams", i)
        name = raw.get("name") if isinstance(raw.get("name"), str) else f"streams[{i}]"
        source, timing = raw.get("source"), raw.get("timing", "interval")
        if timing == "recorded" and source != "replay":
            problems.append(where.say(loc + ("timing",), "'recorded' timing needs source: replay"))
        locale = _faker_locale(raw, loc, default_locale, where, problems)
        if source == "random":
            built = (_random_source(raw, loc, locale, base, where, problems, schema_files)
                     if locale is not None else None)
        elif source == "replay":
            built = _replay_source(raw, loc, base, where, problems, files, name)
        else:
            continue  # reported by the schema check
        if built is not None:
            sources[name] = built
    return sources, files


def _faker_locale(raw: dict[str, Any], loc: tuple, default: str | None, where: Locator,
                  problems: list[str]) -> str | None:
    """The `faker_locale` a mapping sets (else ``default``); None, and a problem, when Faker has no such locale."""
    locale = raw.get("faker_locale")
    if locale is None:
        return default
    if not isinstance(locale, str):
        return None  # reported by the schema check
    problem = locale_problem(locale)
    if problem is not None:
        problems.append(where.say(loc + ("faker_locale",), problem))
        return None
    return locale


def _random_source(raw: dict[str, Any], loc: tuple, locale: str, base: Path, where: Locator,
                   problems: list[str], schema_files: set[Path] | None) -> Source | None:
    if raw.get("template") is None:
        problems.append(where.say(loc + ("template",), "is required when source is random "
                                                       "(a mapping whose leaves may be generators)"))
        return None
    params = bindable_params(raw.get("params"), raw.get("path"))
    try:
        template = compile_template(bind_params(raw["template"], params), faker_locale=locale, base_path=base)
    except TemplateError as e:
        problems.append(where.say(loc + ("template",) + e.path, e.message))
        if schema_files is not None:
            schema_files |= e.files
        return None
    if schema_files is not None:
        schema_files |= template.files
    return RandomSource(template)


def _replay_source(raw: dict[str, Any], loc: tuple, base: Path, where: Locator, problems: list[str],
                   files: dict[str, Path], name: str) -> Source | None:
    if not isinstance(raw.get("file"), str):
        if raw.get("file") is None:
            problems.append(where.say(loc + ("file",), "is required when source is replay "
                                                       "(a .json, .jsonl or .ndjson mock file)"))
        return None  # a file that is not a string is reported by the schema check
    file = base / raw["file"]
    files[name] = file
    try:
        source = load_replay_file(file)
    except MockFileError as e:
        problems.append(where.say(loc + ("file",), str(e)))
        return None
    if raw.get("timing") == "recorded" and source.offsets_s is None:
        problems.append(where.say(loc + ("timing",), f"{file}: has no recorded timing: 'recorded' needs "
                                                     "a .jsonl file of {\"t\": ms, \"data\"|\"text\"|\"b64\": ...} "
                                                     "lines (python server.py record URL writes one)"))
    return source


def stream_rng(seed: int | None, name: str) -> Random:
    """The random generator of one stream: reproducible with a seed, independent of other streams."""
    return Random(f"{seed}/{name}") if seed is not None else Random()


def fault_rng(seed: int | None, stream_name: str) -> Random:
    """A fault injector's generator: reproducible with a seed, and separate from the stream's data generator."""
    return Random(f"{seed}/{stream_name}/faults") if seed is not None else Random()


def fault_injector(config: FaultsConfig | None, seed: int | None, stream_name: str) -> FaultInjector | None:
    """The injector for a stream's `faults:` block, or None when every fault is off."""
    if config is None or not config.enabled():
        return None
    return FaultInjector(config, fault_rng(seed, stream_name))
