"""The API reference site: every public name is on a page, and ``mkdocs build --strict`` passes
(when the ``docs`` extra is installed; ``.ci/run`` builds the site after the tests)."""

from __future__ import annotations

import html
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGES = ("neuroctl", "neuroctl.verify", "neuroctl.train", "neuroctl.envs")


def documented() -> set[str]:
    """Identifiers rendered by the pages: ``::: ident`` blocks and their ``members:`` lists."""
    names: set[str] = set()
    for page in DOCS.glob("*.md"):
        current, in_members = None, False
        for line in page.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^::: ([\w.]+)\s*$", line)
            if m:
                current, in_members = m.group(1), False
                names.add(current)
            elif current and line.strip() == "members:":
                in_members = True
            elif current and in_members and (m := re.match(r"^\s+- (\w+)\s*$", line)):
                names.add(f"{current}.{m.group(1)}")
            elif not line.startswith(" "):
                current, in_members = (None, False) if line.strip() else (current, in_members)
    return names


def home(package: str, name: str) -> str:
    """``module.name`` where a public name is defined (lazy names without importing them)."""
    mod = importlib.import_module(package)
    lazy = getattr(mod, "_LAZY", {})
    if name in lazy:
        return f"{importlib.util.resolve_name(lazy[name], package)}.{name}"
    obj = getattr(mod, name)
    module = getattr(obj, "__module__", None)
    return f"{module}.{name}" if module and callable(obj) else f"{package}.{name}"


def test_every_public_name_is_on_a_page():
    pages = documented()
    missing = []
    for package in PACKAGES:
        for name in importlib.import_module(package).__all__:
            where = home(package, name)
            if where not in pages and f"{package}.{name}" not in pages:
                # constants are documented where they are defined
                if not any(p.endswith(f".{name}") and p.startswith("neuroctl.") for p in pages):
                    missing.append(where)
    assert missing == [], f"public names on no page of docs/: {missing}"


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install '.[docs]'")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is missing")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the pages carry what the docstrings and the program say
    analysis = (site / "analysis" / "index.html").read_text(encoding="utf-8")
    assert "local_gain" in analysis and "kink_tol" in analysis  # a parameter from numpydoc
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    help_verify = subprocess.run(
        [sys.executable, "-m", "neuroctl.cli", "verify", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shown = html.unescape(cli)  # the page may escape quotes as entities inside the code block
    for line in help_verify.splitlines():  # the page shows the program's own help, verbatim
        assert line.strip() in shown, line
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "Unreleased" in changelog and "0.1.0" in changelog
