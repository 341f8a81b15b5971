"""A Griffe extension for the API reference (mkdocs.yml, mkdocstrings' `extensions`): what a reader of
a module's page needs first, in the form they can use.

- Public functions first: a module's members are listed by its `__all__` (or, without one, its
  public names in source order) with functions, then classes, then constants (mkdocstrings'
  `members_order: __all__`).
- Defaults as values: a parameter whose default is a name (`iters = PGD_ITERS`) shows the value the
  function really has (`iters = 40`), read from the imported function's signature.
- A constant whose value would take more than a line (a registry such as `ATTACKS`) is shown
  without it: its docstring says what it holds.
"""

from __future__ import annotations

import importlib
import inspect

import griffe

LONGEST_VALUE = 80  # characters: a longer value (a dict of 20 entries) is left out of the page


def _kind_rank(name: str, member) -> int:
    """0 a function, 1 a class, 2 anything else. An import (an alias, not resolved yet when a package
    loads) is ranked by its name: CONSTANT, Class, function."""
    if member is not None and not member.is_alias:
        return {"function": 0, "class": 1}.get(member.kind.value, 2)
    return 2 if name.isupper() else 1 if name[:1].isupper() else 0


class APIReference(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for module in _modules(pkg):
            names = list(module.exports) if module.exports is not None else [  # no __all__: what it defines
                n for n, m in module.members.items() if not n.startswith("_") and not m.is_alias and not m.is_module]
            module.exports = sorted(names, key=lambda n: _kind_rank(n, module.members.get(n)))

    def on_function_instance(self, *, func: griffe.Function, **kwargs) -> None:
        named = [p for p in func.parameters if isinstance(p.default, (griffe.ExprName, griffe.ExprAttribute))]
        if not named:
            return
        try:
            signature = inspect.signature(_live(func))
        except (TypeError, ValueError):
            return
        for p in named:
            if p.name in signature.parameters:
                value = signature.parameters[p.name].default
                text = repr(value)
                if value is not inspect.Parameter.empty and len(text) <= LONGEST_VALUE and not text.startswith("<"):
                    p.default = text

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs) -> None:
        if isinstance(attr.value, (griffe.ExprName, griffe.ExprAttribute)):  # `pgd_iters: int = PGD_ITERS`: its value
            value = _live(attr)
            if value is not _MISSING and len(repr(value)) <= LONGEST_VALUE and not repr(value).startswith("<"):
                attr.value = repr(value)
        if attr.value is not None and len(str(attr.value)) > LONGEST_VALUE:
            attr.value = None


_MISSING = object()


def _live(obj) -> object:
    """The object at `obj.path` in the imported package (a class attribute: the class's default)."""
    try:
        live = importlib.import_module(obj.module.path)
        for part in obj.path[len(obj.module.path) + 1:].split("."):
            live = getattr(live, part)
        return live
    except (ImportError, AttributeError):
        return _MISSING


def _modules(module: griffe.Module):
    yield module
    for member in module.members.values():
        if not member.is_alias and member.is_module:
            yield from _modules(member)
