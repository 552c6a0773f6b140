"""One registry for every replaceable stage (PDF backends, taggers, storage), by versioned name.

Built-ins register here exactly as extensions would, and the versioned name (e.g. "tagger.rules.v1")
is stored with every result so each tag and passage can say how it was made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_FACTORIES: dict[str, dict[str, Callable[..., Any]]] = {}
_ALIASES: dict[str, dict[str, str]] = {}


def register(kind: str, name: str, *, alias: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a factory under `kind` ("extract", "tagger", ...) and a versioned `name`."""

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        _FACTORIES.setdefault(kind, {})[name] = factory
        if alias:
            _ALIASES.setdefault(kind, {})[alias] = name
        return factory

    return decorate


def resolve(kind: str, name: str) -> str:
    """The full versioned name for a short alias ("pdfium" -> "extract.pdfium.v1")."""
    _load_builtins(kind)
    name = _ALIASES.get(kind, {}).get(name, name)
    if name not in _FACTORIES.get(kind, {}):
        known = ", ".join(sorted(set(_FACTORIES.get(kind, {})) | set(_ALIASES.get(kind, {}))))
        raise KeyError(f"no {kind} named {name!r}; known: {known}")
    return name


def create(kind: str, name: str, **kwargs: Any) -> Any:
    return _FACTORIES[kind][resolve(kind, name)](**kwargs)


def names(kind: str) -> list[str]:
    _load_builtins(kind)
    return sorted(_FACTORIES.get(kind, {}))


def aliases(kind: str) -> list[str]:
    _load_builtins(kind)
    return sorted(_ALIASES.get(kind, {}))


# Where each kind's built-ins register themselves. Loaded per kind, so resolving a PDF backend never
# imports spaCy or torch.
BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "extract": ("vkpp_learning.extract.backends",),
    "tagger": ("vkpp_learning.tagging.builtin",),
    "detector": ("vkpp_learning.tagging.builtin",),
}


def _load_builtins(kind: str) -> None:
    import importlib

    for module in BUILTIN_MODULES.get(kind, ()):
        importlib.import_module(module)  # runs the module's @register decorators once
