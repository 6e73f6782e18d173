"""The packages' lazy public names (PEP 562 ``__getattr__``) are declared for type checkers and
IDEs in an ``if TYPE_CHECKING:`` block that imports each from the module the lazy table names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGES_WITH_LAZY_NAMES = ("neuroctl", "neuroctl.train")


def type_checking_imports(source: str) -> dict[str, str]:
    """name -> relative module of the imports under ``if TYPE_CHECKING:`` (a submodule imported
    with ``from . import name`` maps to ``.name``)."""
    declared: dict[str, str] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"):
            continue
        for stmt in node.body:
            assert isinstance(stmt, ast.ImportFrom), ast.unparse(stmt)
            for alias in stmt.names:
                module = "." * stmt.level + (stmt.module or alias.name)
                declared[alias.asname or alias.name] = module
    return declared


@pytest.mark.parametrize("package", PACKAGES_WITH_LAZY_NAMES)
def test_every_lazy_name_is_declared_from_its_module(package):
    mod = importlib.import_module(package)
    declared = type_checking_imports(Path(mod.__file__).read_text(encoding="utf-8"))
    assert declared == mod._LAZY


@pytest.mark.parametrize("package", PACKAGES_WITH_LAZY_NAMES)
def test_every_declared_import_gives_the_object_the_package_hands_out(package):
    mod = importlib.import_module(package)
    callable_modules = getattr(mod, "_CALLABLE_MODULES", ())  # the module is the public name
    for name, module in type_checking_imports(Path(mod.__file__).read_text()).items():
        target = importlib.import_module(module, package)
        declared = target if name in callable_modules else getattr(target, name)
        assert getattr(mod, name) is declared, name
