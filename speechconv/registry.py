"""The one way configs name things: ``{"name": NAME, **options}`` looked up in a registry, options checked
against the builder's signature, every mistake one :class:`ConfigError` line. Front-ends, augmentations
and models use it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from speechconv.errors import ConfigError


def split_config(config: Any, kind: str) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of a config: a bare name or a mapping with a ``name`` key."""
    if isinstance(config, str):
        return config, {}
    if not isinstance(config, Mapping) or config.get("name") is None:
        raise ConfigError(f"{kind} config must be a name or a mapping with a 'name' key, got {config!r}")
    options = dict(config)
    return options.pop("name"), options


def lookup(registry: Mapping[str, Any], name: str, kind: str, hint: str = "") -> Any:
    """``registry[name]``, or one line naming what is known."""
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; {hint or 'known'}: {', '.join(sorted(registry))}")
    return registry[name]


def accepted_options(builder: Callable, inherited: Iterable[str] = ()) -> set[str] | None:
    """Keyword options ``builder`` accepts (``inherited`` too when it takes ``**kwargs``); None when it takes
    ``**kwargs`` and nothing says what they are."""
    parameters = inspect.signature(builder).parameters
    names = {n for n, p in parameters.items() if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
             and p.kind is not inspect.Parameter.VAR_POSITIONAL}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        inherited = set(inherited)
        return names | inherited if inherited else None
    return names


def check_options(options: Mapping[str, Any], accepted: set[str] | None, kind: str, name: str) -> None:
    """Unknown option names are one line listing the accepted ones (nothing is checked when ``accepted`` is None)."""
    if accepted is None:
        return
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"{kind} {name!r}: unknown option(s) {', '.join(unknown)}; "
                          f"accepted: {', '.join(sorted(accepted))}")
