"""Importing ``skops.io`` (the models' file format) quickly in a process that has loaded thousands of modules.

On import, skops lists the types it trusts. For each SciPy ufunc, which has no ``__module__``, its
``whichmodule`` asks every module in ``sys.modules``, in import order, for the ufunc's name until one
holds it. In an Airflow task process the modules of Airflow come first, and each failed ``getattr`` on a
module builds and drops an ``AttributeError``: about half a million of them, most of a second on an idle
machine and several seconds on a loaded one, in every task that saves or loads a model.

:func:`import_skops` answers the same question from an index while skops imports: a plain module
without a module-level ``__getattr__`` holds a name exactly when its ``__dict__`` does, so the plain
modules' namespaces are indexed once; any other entry (a lazy module, a module subclass, an object that
is not a module) is still asked through ``getattr``, in order, as skops does. The first module found, and
so every type name skops records, is the same.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

#: The skops module whose import lists the trusted types, and the module holding the search it uses.
TRUSTED_TYPES_MODULE = "skops.io._trusted_types"
SEARCH_MODULE = "skops.io._utils"


class ModuleIndex:
    """Where each (name, object) pair is first held, over the plain modules of ``sys.modules``, in import order.

    Built once and again only when the number of loaded modules changes. Entries that are not plain
    modules (a module-level ``__getattr__``, a module subclass, another object) are kept aside, in order,
    to be asked through ``getattr`` as skops asks them.
    """

    def __init__(self) -> None:
        self.size = -1
        self.first: dict[tuple[str, int], tuple[int, str]] = {}
        self.others: list[tuple[int, str, Any]] = []

    def refresh(self) -> None:
        modules = sys.modules.copy()
        if len(modules) == self.size:
            return
        self.size, self.first, self.others = len(modules), {}, []
        for position, (module_name, module) in enumerate(modules.items()):
            if module_name in ("__main__", "__mp_main__") or module is None:
                continue
            if type(module) is ModuleType and "__getattr__" not in module.__dict__:
                for key, value in module.__dict__.items():
                    self.first.setdefault((key, id(value)), (position, module_name))
            else:
                self.others.append((position, module_name, module))

    def which_module(self, obj: Any, name: str, fallback: Callable[[Any, str], str]) -> str:
        """The first module in ``sys.modules`` (import order) whose attribute ``name`` is ``obj``.

        Args:
            obj: the object looked for.
            name: its name in the module.
            fallback: skops's own search, used for dotted names.

        Returns:
            The object's ``__module__`` when it has one, else the module's name, else ``"__main__"``.
        """
        module_name = getattr(obj, "__module__", None)
        if module_name is not None:
            return str(module_name)
        if "." in name:
            return fallback(obj, name)
        self.refresh()
        position, found_in = self.first.get((name, id(obj)), (self.size, "__main__"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for other_position, other_name, other in self.others:
                if other_position > position:
                    break
                try:
                    if getattr(other, name, None) is obj:
                        return other_name
                except (AttributeError, ImportError):
                    continue
        return found_in


class _FasterSearchWhileListing(importlib.abc.MetaPathFinder):
    """Swaps skops's module search for :meth:`ModuleIndex.which_module` just before the trusted types are listed."""

    def __init__(self) -> None:
        self.replaced: tuple[ModuleType, Callable[[Any, str], str]] | None = None

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        utils = sys.modules.get(SEARCH_MODULE)
        if fullname == TRUSTED_TYPES_MODULE and utils is not None and self.replaced is None:
            original, index = utils.whichmodule, ModuleIndex()
            self.replaced = (utils, original)
            utils.whichmodule = lambda obj, name: index.which_module(obj, name, original)  # type: ignore[attr-defined]
        return None  # the ordinary finders import the module

    def restore(self) -> None:
        if self.replaced is not None:
            utils, original = self.replaced
            utils.whichmodule = original  # type: ignore[attr-defined]


@contextmanager
def _faster_search() -> Iterator[None]:
    finder = _FasterSearchWhileListing()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        finder.restore()


def import_skops() -> ModuleType:
    """``skops.io``, which stores the models, imported without a flood of warnings and with the faster module search.

    In an Airflow task, skops's search also reads Airflow's deprecated shim modules, and each read would
    log a deprecation warning: about a thousand lines in the task log. Those warnings are silenced.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    with warnings.catch_warnings(), _faster_search():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import skops.io

    return skops.io
