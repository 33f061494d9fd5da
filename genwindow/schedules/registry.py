"""Schedules by name, so that a configuration file or a command line can choose one.

A spec is ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE``, for example ``cosine:total_steps=1000``
or ``gap-threshold:decay=0.1,patience=3``. Every learning-rate shape also takes
``warmup=W`` (a linear warm-up over W steps in front of it). ``context`` passes facts about
the run (total_steps, n, psi_n, tau_per_step, …). A parameter that the spec leaves out takes
the context value of the same name when the schedule declares it as a context parameter.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from genwindow.errors import ConfigError
from genwindow.schedules.base import Schedule


@dataclass(frozen=True)
class Entry:
    """A named schedule: its factory and the parameters that a spec may set."""

    name: str
    build: Callable[..., Schedule]
    params: dict[str, type]   # parameter name -> type of its value in a spec
    help: str
    context: tuple[str, ...] = field(default=())   # parameters filled from the run context


_REGISTRY: dict[str, Entry] = {}
_BUILTIN_MODULES = ("genwindow.schedules.shapes_registry", "genwindow.schedules.controllers")
_loaded = False


def register(name: str, params: dict[str, type], help: str, context: tuple[str, ...] = ()):
    """Decorate a factory so that ``make_schedule`` builds it under ``name``."""
    def decorate(build: Callable[..., Schedule]):
        if name in _REGISTRY and _REGISTRY[name].build is not build:
            raise ValueError(f"schedule name {name!r} is registered twice")
        if not set(context) <= set(params):
            raise ValueError(f"context keys {context} of {name!r} must also be parameters")
        _REGISTRY[name] = Entry(name, build, dict(params), help, tuple(context))
        return build
    return decorate


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def available() -> dict[str, Entry]:
    """Return the registered schedules by name, in registration order."""
    _load_builtins()
    return dict(_REGISTRY)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``NAME:KEY=VALUE,...`` into the name and a dict of raw string values."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"schedule spec must be a non-empty string like "
                          f"'cosine:total_steps=1000', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    raw: dict[str, str] = {}
    for item in (part.strip() for part in rest.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ConfigError(f"schedule spec {spec!r}: parameter {item!r} is not KEY=VALUE")
        if key.strip() in raw:
            raise ConfigError(f"schedule spec {spec!r} sets {key.strip()!r} twice")
        raw[key.strip()] = value.strip()
    return name.strip(), raw


def _convert(spec: str, key: str, text, kind: type):
    if not isinstance(text, str):
        return text
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        if kind is int:
            value = float(text)
            if value != int(value):
                raise ValueError(text)
            return int(value)
        return kind(text)
    except ValueError:
        raise ConfigError(f"schedule spec {spec!r}: {key}={text!r} is not a valid "
                          f"{kind.__name__}")


def make_schedule(spec: str, **context) -> Schedule:
    """Build the schedule that ``spec`` names; see the module docstring for the syntax.

    Raises ConfigError for an unknown name, an unknown parameter or a value of the wrong type,
    with the list of what is accepted.
    """
    _load_builtins()
    name, raw = parse_spec(spec)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown schedule {name!r} in {spec!r}; known schedules: "
                          f"{', '.join(_REGISTRY)}")
    entry = _REGISTRY[name]
    unknown = sorted(set(raw) - set(entry.params))
    if unknown:
        accepted = ", ".join(entry.params) or "none"
        raise ConfigError(f"schedule {name!r} has no parameter {', '.join(unknown)}; "
                          f"accepted parameters: {accepted}")
    kwargs = {key: _convert(spec, key, value, entry.params[key]) for key, value in raw.items()}
    for key in entry.context:
        if key not in kwargs and context.get(key) is not None:
            kwargs[key] = _convert(spec, key, context[key], entry.params[key])
    return entry.build(**kwargs)


def describe() -> str:
    """Return one line per registered schedule with its parameters, for help text."""
    lines = []
    for entry in available().values():
        params = ",".join(entry.params)
        lines.append(f"{entry.name}{':' + params if params else ''}  {entry.help}")
    return "\n".join(lines)
