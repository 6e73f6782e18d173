"""A self-contained HTML report: one ``index.html`` with its figures embedded as PNG data URIs.

The page needs nothing else to be viewed (no scripts, no network, no side files: inline CSS,
images as ``data:image/png;base64,...``). Its header names the neuroctl version and the command
that made it. Figures are laid out for the width at which they are shown: a full figure spans the
text column, a ``half`` figure half of it (small multiples, two by two), and every text of a
figure is set to at least :data:`MIN_FONT_PT` points *as displayed* at the default page width.
Empty table cells read "n/a" with a footnote saying why. The file is written atomically (a
temporary sibling folder replaces the target), so a reader never sees half a report.

Example
-------
>>> report = Report("Arm, ReLU controller", command="neuroctl demo")
>>> sec = report.section("Stability", "Poles of the closed loop at the target.")
>>> sec.add_table([{"region": 0, "verdict": "stable", "spectral radius": 0.97}])
>>> sec.add_figure(fig, "poles", caption="pole map")          # a matplotlib Figure
>>> report.write("neuroctl-report")                          # -> Path('neuroctl-report/index.html')
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
import re
import shlex
import shutil
import struct
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._json import json_dict
from ._report_table import Missing, Table, format_value

__all__ = ["Report", "Section", "Table", "Figure", "Missing", "format_value", "MIN_FONT_PT"]

MIN_FONT_PT = 9.0
"""Smallest text size (points, as displayed at the default page width) of a report figure."""

COLUMN_PX = 1000
"""Width of the text column in CSS pixels at the default page width (a full figure's width)."""

_GAP_PX = 16  # between two half-width figures
_CSS_PX_PER_IN = 96.0  # CSS: 1 in = 96 px = 72 pt
_MIN_HALF_ASPECT = 0.55  # height / width of a half figure at least (room for labels at 9 pt)

_CSS = f"""
*, *::before, *::after {{ box-sizing: border-box; }}
body {{ font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif;
       font-size: 16px; max-width: {COLUMN_PX + 32}px; margin: 1.5em auto; padding: 0 16px;
       color: #222; line-height: 1.45; overflow-wrap: anywhere; }}
header {{ border-bottom: 2px solid #345; margin-bottom: 1em; }}
h1 {{ margin-bottom: .2em; }}
h2 {{ margin-top: 2em; border-bottom: 1px solid #ccc; }}
.scroll {{ overflow-x: auto; max-width: 100%; margin: .8em 0; }}
table {{ border-collapse: collapse; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: .25em .5em; text-align: right; overflow-wrap: normal; }}
th {{ background: #eef2f6; vertical-align: bottom; }}
td.text, th.text {{ text-align: left; }}
td.na {{ color: #777; text-align: center; }}
caption {{ caption-side: top; text-align: left; font-weight: 600; padding: .3em 0; }}
.footnotes {{ font-size: 13px; color: #555; margin: -.4em 0 1em; padding: 0; list-style: none; }}
figure {{ margin: 1em 0; }}
figure img {{ display: block; width: 100%; height: auto; outline: 1px solid #ddd; }}
.multiples {{ display: grid; grid-template-columns: 1fr 1fr; gap: {_GAP_PX}px; }}
.multiples figure {{ margin: 0; min-width: 0; }}
figcaption {{ font-size: 14px; color: #555; margin-top: .3em; }}
pre {{ background: #f6f8fa; padding: .6em; overflow-x: auto; font-size: 13px; }}
code {{ font-size: 14px; }}
.note {{ color: #6b4500; background: #fff6e0; padding: .4em .6em; border-left: 3px solid #e0a800; }}
.meta {{ color: #555; font-size: 14px; margin: .2em 0 .6em; }}
nav ul {{ columns: 2; }}
"""


def _slug(text: str) -> str:
    s = re.sub(r"[^a-zA-Z0-9]+", "-", text.lower()).strip("-")
    return s or "item"


@dataclass
class Figure:
    """A PNG figure, rendered when added (so the matplotlib figure can be closed).

    Attributes
    ----------
    name : str
        Unique within the report (an anchor of the page).
    png : bytes
        The image.
    caption : str or None
    width, height : int
        Pixel size of the PNG.
    half : bool
        Shown at half the column width, beside the next half figure.
    display_width : float
        CSS px at which the page shows it at the default width.
    min_font_pt : float
        Smallest size of a text in it, in points as displayed at ``display_width``.
    """

    name: str
    png: bytes
    caption: str | None = None
    width: int = 0
    height: int = 0
    half: bool = False
    display_width: float = float(COLUMN_PX)
    min_font_pt: float = float("nan")

    def data_uri(self) -> str:
        """The PNG as a ``data:image/png;base64,...`` URI."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _texts(fig) -> list:
    """Every visible, non-empty text artist of a drawn figure (titles, labels, ticks, legends)."""
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _fit_fonts(fig, display_width: float, *, half: bool, min_pt: float) -> float:
    """Size ``fig`` to be shown 1:1 at ``display_width`` CSS px with no text under ``min_pt``.

    Returns the smallest text size as displayed (points).
    """
    w, h = fig.get_size_inches()
    new_w = display_width / _CSS_PX_PER_IN
    new_h = h * new_w / w
    if half:
        new_h = max(new_h, _MIN_HALF_ASPECT * new_w)
    fig.set_size_inches(new_w, new_h)
    fig.canvas.draw()  # creates the tick labels that are drawn
    for ax in fig.axes:
        for axis, which in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            labels = axis.get_ticklabels(which="both")
            if any(t.get_fontsize() < min_pt for t in labels):
                ax.tick_params(axis=which, which="both", labelsize=min_pt)
    for t in _texts(fig):
        if t.get_fontsize() < min_pt:
            t.set_fontsize(min_pt)
    engine = fig.get_layout_engine()
    if engine is None or type(engine).__name__ == "PlaceHolderLayoutEngine":
        with warnings.catch_warnings():  # "not compatible with tight_layout": keep the layout
            warnings.simplefilter("ignore")
            fig.tight_layout()
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in _texts(fig)]
    return float(min(sizes)) if sizes else float("nan")


@dataclass
class Section:
    """A titled part of a report: paragraphs, tables, figures and preformatted text, in order."""

    title: str
    items: list = field(default_factory=list)
    _used: set = field(default_factory=set, repr=False)  # figure names taken in the report

    def add_text(self, text: str) -> Section:
        """A paragraph of plain text (escaped)."""
        self.items.append(("text", str(text)))
        return self

    def add_note(self, text: str) -> Section:
        """A highlighted note, e.g. a part of the report that could not be computed."""
        self.items.append(("note", str(text)))
        return self

    def add_pre(self, text: str) -> Section:
        """Preformatted text (e.g. a result's ``repr``)."""
        self.items.append(("pre", str(text)))
        return self

    def add_table(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        missing: str | Mapping[str, str] | None = None,
    ) -> Table:
        """A table from a sequence of mappings (column -> value).

        Parameters
        ----------
        rows : sequence of mapping
            One mapping per row. A missing cell, ``None`` or a :class:`Missing` is shown as
            "n/a" with a footnote.
        columns : sequence of str, optional
            Column order (default: the keys in order of first appearance).
        caption : str, optional
        missing : str or mapping of str to str, optional
            Why empty cells are empty: one reason for the table, or one per column (a cell's own
            :class:`Missing` reason comes first; without either a generic reason is given).

        Returns
        -------
        Table
        """
        if isinstance(rows, Mapping) or not isinstance(rows, Sequence):
            raise TypeError(
                f"add_table: rows: expected a sequence of mappings, received {type(rows).__name__}"
            )
        for i, r in enumerate(rows):
            if not isinstance(r, Mapping):
                raise TypeError(
                    f"add_table: rows[{i}]: expected a mapping column -> value, received "
                    f"{type(r).__name__}"
                )
        if missing is not None and not isinstance(missing, (str, Mapping)):
            raise TypeError(
                "add_table: missing: expected a str or a mapping column -> reason, received "
                f"{type(missing).__name__}"
            )
        table = Table.from_rows(rows, columns=columns, caption=caption, missing=missing)
        self.items.append(("table", table))
        return table

    def add_figure(
        self,
        fig,
        name: str,
        *,
        caption: str | None = None,
        dpi: float | None = None,
        close: bool = True,
        half: bool = False,
    ) -> Figure:
        """Lay out a matplotlib figure for its place on the page, render it to PNG and add it.

        The figure is resized to the width it is shown at (the text column, or half of it for
        ``half``), every text smaller than :data:`MIN_FONT_PT` is enlarged to it, and the layout
        is redone (``tight_layout`` unless the figure has a layout engine of its own).

        Parameters
        ----------
        fig : matplotlib.figure.Figure
            Changed in place (size, font sizes, layout).
        name : str
            Anchor of the figure (made unique within the report).
        caption : str, optional
        dpi : float, optional
            Resolution of the PNG (default: twice the display resolution, sharp on high-density
            screens).
        close : bool
            Close the matplotlib figure afterwards (default True).
        half : bool
            Show it at half the column width (two such figures side by side).

        Returns
        -------
        Figure
        """
        import io

        import matplotlib.pyplot as plt

        if dpi is not None and not (isinstance(dpi, (int, float)) and 10 <= dpi <= 1000):
            raise ValueError(f"add_figure: dpi: expected a number in [10, 1000], received {dpi!r}")
        display = (COLUMN_PX - _GAP_PX) / 2 if half else float(COLUMN_PX)
        min_pt = _fit_fonts(fig, display, half=half, min_pt=MIN_FONT_PT)
        dpi = 2 * _CSS_PX_PER_IN if dpi is None else float(dpi)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        w, h = struct.unpack(">II", buf.getvalue()[16:24])  # the PNG's own size (IHDR)
        if close:
            plt.close(fig)
        stem, k = _slug(name), 1
        unique = stem
        while unique in self._used:
            k += 1
            unique = f"{stem}-{k}"
        self._used.add(unique)
        figure = Figure(
            name=unique,
            png=buf.getvalue(),
            caption=caption,
            width=w,
            height=h,
            half=half,
            display_width=display,
            min_font_pt=min_pt,
        )
        self.items.append(("figure", figure))
        return figure


def _invocation() -> str:
    """The command line of this process, as a user would type it."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    if len(argv) >= 2 and Path(argv[1]).name == "neuroctl":  # the console script
        argv = ["neuroctl", *argv[2:]]
    else:
        argv[0] = Path(argv[0]).name
    return shlex.join(argv)


def _versions() -> str:
    from importlib import metadata

    parts = [f"Python {sys.version.split()[0]}"]
    for dist in ("numpy", "torch", "control"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


class Report:
    """An HTML report made of sections; :meth:`write` puts it in one self-contained file.

    Parameters
    ----------
    title : str
    intro : str, optional
        A paragraph under the title.
    command : str, optional
        The command that made the report, shown in its header (default: this process's command
        line, e.g. ``neuroctl demo --out neuroctl-report``).
    """

    def __init__(self, title: str, *, intro: str | None = None, command: str | None = None):
        from . import __version__

        self.title = str(title)
        self.intro = intro
        self.command = _invocation() if command is None else str(command)
        self.version = __version__
        self.sections: list[Section] = []
        self._used: set[str] = set()
        self.created = _dt.datetime.now(_dt.timezone.utc)

    def section(self, title: str, text: str | None = None) -> Section:
        """Append a new section (with an optional first paragraph) and return it."""
        sec = Section(str(title), _used=self._used)
        if text:
            sec.add_text(text)
        self.sections.append(sec)
        return sec

    @property
    def figures(self) -> list[Figure]:
        """Every figure, in page order."""
        return [it for s in self.sections for kind, it in s.items if kind == "figure"]

    @property
    def tables(self) -> list[Table]:
        """Every table, in page order."""
        return [it for s in self.sections for kind, it in s.items if kind == "table"]

    def __repr__(self) -> str:
        return (
            f"Report({self.title!r}: {len(self.sections)} sections, {len(self.tables)} tables, "
            f"{len(self.figures)} figures)"
        )

    @json_dict
    def to_dict(self) -> dict:
        """The report's content without the images (tables as lists of rows)."""
        out: dict[str, Any] = {
            "title": self.title,
            "version": self.version,
            "command": self.command,
            "created": self.created.isoformat(),
            "sections": [],
        }
        for s in self.sections:
            items = []
            for kind, it in s.items:
                if kind == "table":
                    rows = [{c: format_value(r.get(c)) for c in it.columns} for r in it.rows]
                    items.append({"table": rows, "caption": it.caption, "notes": it.footnotes()})
                elif kind == "figure":
                    items.append({"figure": it.name, "caption": it.caption})
                else:
                    items.append({kind: it})
            out["sections"].append({"title": s.title, "items": items})
        return out

    def to_text(self) -> str:
        """The tables, notes and text of the report as plain text (figures listed by name)."""
        lines = [self.title, "=" * len(self.title), self._meta()]
        for s in self.sections:
            lines += ["", s.title, "-" * len(s.title)]
            for kind, it in s.items:
                if kind == "table":
                    lines.append(it.to_text())
                elif kind == "figure":
                    lines.append(f"[figure: {it.name}]")
                elif kind == "note":
                    lines.append(f"NOTE: {it}")
                else:
                    lines.append(str(it))
        return "\n".join(lines)

    def _meta(self) -> str:
        return f"neuroctl {self.version}, made by: {self.command}"

    def _html(self) -> str:
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="neuroctl {html.escape(self.version)}">',
            f"<title>{html.escape(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<header><h1>{html.escape(self.title)}</h1>",
            f'<p class="meta" id="version">neuroctl {html.escape(self.version)} '
            f"({html.escape(_versions())}), written {self.created:%Y-%m-%d %H:%M} UTC</p>",
            f'<p class="meta">made by <code id="command">{html.escape(self.command)}</code></p>',
            "</header>",
        ]
        if self.intro:
            parts.append(f"<p>{html.escape(self.intro)}</p>")
        if len(self.sections) > 2:
            parts.append("<nav><ul>")
            for i, s in enumerate(self.sections):
                parts.append(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>')
            parts.append("</ul></nav>")
        n_tables = 0
        for i, s in enumerate(self.sections):
            parts.append(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>')
            grid_open = False
            for kind, it in s.items:
                is_half = kind == "figure" and it.half
                if grid_open and not is_half:
                    parts.append("</div>")
                    grid_open = False
                if kind == "text":
                    parts.append(f"<p>{html.escape(it)}</p>")
                elif kind == "note":
                    parts.append(f'<p class="note">{html.escape(it)}</p>')
                elif kind == "pre":
                    parts.append(f"<pre>{html.escape(it)}</pre>")
                elif kind == "table":
                    n_tables += 1
                    parts.append(it.to_html(anchor=f"t{n_tables}"))
                elif kind == "figure":
                    if is_half and not grid_open:
                        parts.append('<div class="multiples">')
                        grid_open = True
                    alt = html.escape(it.caption or it.name)
                    cap = (
                        f"<figcaption>{html.escape(it.caption)}</figcaption>" if it.caption else ""
                    )
                    parts.append(
                        f'<figure id="fig-{it.name}"><img src="{it.data_uri()}" alt="{alt}" '
                        f'width="{it.width}" height="{it.height}" '
                        f'data-display-width="{it.display_width:g}" '
                        f'data-min-font-pt="{it.min_font_pt:.3g}">{cap}</figure>'
                    )
            if grid_open:
                parts.append("</div>")
            parts.append("</section>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def write(self, folder) -> Path:
        """Write the report as one self-contained ``index.html`` in ``folder``, atomically.

        The file is written in a temporary sibling folder which then replaces ``folder`` (an
        earlier report there, with the ``figures/`` of older versions, is replaced as a whole).

        Parameters
        ----------
        folder : str or Path

        Returns
        -------
        Path
            The written ``index.html``.

        Raises
        ------
        ValueError
            ``folder`` is a file, or a folder holding other files than an earlier report.
        """
        folder = Path(folder).resolve()
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"report folder: expected a directory path, received a file {folder}")
        if folder.is_dir() and any(folder.iterdir()) and not (folder / "index.html").exists():
            raise ValueError(
                f"report folder: expected a new or empty folder or an earlier report, received "
                f"{folder}, which holds other files (refusing to replace it)"
            )
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            (tmp / "index.html").write_text(self._html(), encoding="utf-8")
            os.chmod(tmp, 0o755)
            old = None
            if folder.exists():
                old = folder.parent / f".{folder.name}.old-{os.getpid()}"
                os.replace(folder, old)
            os.replace(tmp, folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder / "index.html"
