"""The plugin registry shared by scores and selectors: register by decorator, look up by name, list the names."""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

from .errors import InvalidArgumentError, UnknownPluginError


T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry(Generic[T]):
    """A name -> class mapping for one plugin family (`kind` is "score" or "selector")."""

    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
        self.classes: dict[str, type[T]] = {}

    def register(self, cls: type[T] | None = None, *, overwrite: bool = False):
        """Class decorator adding `cls` under `cls.name` (lower snake case; duplicates need `overwrite=True`)."""

        def decorator(plugin: type[T]) -> type[T]:
            if not (isinstance(plugin, type) and issubclass(plugin, self.base)):
                raise TypeError(f"@register_{self.kind} expects a {self.base.__name__} subclass, got {plugin!r}.")
            name = getattr(plugin, "name", None)
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"{self.kind.capitalize()} name must be lower snake case, got {name!r}.")
            if name in self.classes and not overwrite and self.classes[name] is not plugin:
                raise ValueError(
                    f"A {self.kind} named {name!r} is already registered; pass overwrite=True to replace it."
                )
            self.classes[name] = plugin
            return plugin

        return decorator(cls) if cls is not None else decorator

    def names(self) -> list[str]:
        return sorted(self.classes)

    def lookup(self, name: Any) -> type[T]:
        """The class registered as `name` (raises [`UnknownPluginError`] listing the known names)."""
        if not isinstance(name, str) or name not in self.classes:
            raise UnknownPluginError(f"Unknown {self.kind} {name!r}. Known {self.kind}s: {', '.join(self.names())}.")
        return self.classes[name]

    def create(self, spec: Any, **options: Any) -> T:
        """An instance from a registered name (with options), or an instance returned as is."""
        if isinstance(spec, self.base):
            if options:
                raise InvalidArgumentError(f"Options cannot be passed together with a {self.kind} instance.")
            return spec
        return self.lookup(spec)(**options)
