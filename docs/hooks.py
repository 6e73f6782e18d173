"""mkdocs hooks.

- The sources are read statically in the layout they are installed in: ``pyproject.toml`` maps
  the top-level ``envs/`` folder to ``neuroctl.envs``, so a tree of links
  ``build/docs-src/neuroctl`` (the package, with ``envs`` linked in) is made before the build.
- The command line page shows the ``--help`` of every subcommand as the installed ``neuroctl``
  prints it (so the page never disagrees with the program).
- The changelog page is the repository's ``CHANGELOG.md``.
- Sphinx roles of the docstrings (``:func:`x```) are shown as plain code (``x``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

_MARK = "<!-- neuroctl-help -->"
_COMMANDS = ("", "demo", "report", "simulate", "analyze", "verify", "train")
_ROOT = Path(__file__).resolve().parent.parent


_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const):(?=<code>)")
_SRC = _ROOT / "build" / "docs-src"


def _link_sources() -> None:
    """Link the package and its ``envs`` into ``build/docs-src/neuroctl`` (the installed layout)."""
    package = _SRC / "neuroctl"
    if _SRC.exists():
        shutil.rmtree(_SRC)
    package.mkdir(parents=True)
    for entry in (_ROOT / "neuroctl").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "envs").symlink_to(_ROOT / "envs")


# At import, while mkdocs reads its configuration: mkdocstrings drops search paths that do not
# exist yet when its handler is set up, which happens before any hook event.
_link_sources()


def _help(command: str) -> str:
    argv = [sys.executable, "-m", "neuroctl.cli", *([command] if command else []), "--help"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-500:]}")
    return proc.stdout.rstrip()


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == "changelog.md":
        return (_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    if _MARK not in markdown:
        return markdown
    blocks = []
    for command in _COMMANDS:
        title = f"neuroctl {command}".strip()
        blocks.append(f"### `{title}`\n\n```text\n{_help(command)}\n```\n")
    return markdown.replace(_MARK, "\n".join(blocks))


def on_page_content(html: str, page, config, files) -> str:
    return _ROLE.sub("", html)
