"""Named registries (strategies, data sets, backbones) with one discovery mechanism: every module
of the registry's package is imported the first time a name is looked up, and each registers
what it defines with the decorator. Adding a strategy, a data set or a backbone is therefore one
new file in its package (plus its config file); nothing lists the modules by hand."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

from autoal.api_marker import developer_api
from autoal.errors import ConfigError

T = TypeVar("T")


@developer_api
class Registry(Generic[T]):
    """``kind`` names what is registered in errors ("strategy"), ``key`` is the config key that
    selects it ("strategy.name"), ``package`` the package whose modules are discovered."""

    def __init__(self, kind: str, key: str, package: str) -> None:
        self.kind, self.key, self.package = kind, key, package
        self._items: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (a second object under the
        same name is a programming error)."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({self._items[name]!r} and {obj!r})")
            self._items[name] = obj
            return obj

        return deco

    def discover(self) -> None:
        """Import every module of the package once (each registers its own entries)."""
        if self._discovered:
            return
        pkg = importlib.import_module(self.package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{self.package}."):
            importlib.import_module(info.name)
        self._discovered = True

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def get(self, name: str) -> T:
        """The entry ``name``; an unknown name raises :class:`ConfigError` naming the key and
        listing the valid choices."""
        self.discover()
        if name not in self._items:
            raise ConfigError(
                f"{self.key}: unknown {self.kind} {name!r}; valid choices: {', '.join(sorted(self._items))}"
            )
        return self._items[name]
