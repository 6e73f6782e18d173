"""A self-contained HTML report: ``index.html`` with PNG figures and tables, in one folder.

The folder needs nothing else to be viewed (no scripts, no network: inline CSS, relative image
paths), and it is written atomically: everything goes to a temporary sibling folder first, which
then replaces the target, so a reader never sees half a report.

Example
-------
>>> report = Report("Arm, ReLU controller")
>>> sec = report.section("Stability", "Poles of the closed loop at the target.")
>>> sec.add_table([{"region": 0, "verdict": "stable", "spectral radius": 0.97}])
>>> sec.add_figure(fig, "poles", caption="pole map")          # a matplotlib Figure
>>> report.write("neuroctl-report")                          # -> Path('neuroctl-report/index.html')
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._json import json_dict

__all__ = ["Report", "Section", "Table", "Figure", "format_value"]

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #345; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #eef2f6; }
td.text, th.text { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .3em 0; }
figure { margin: 1em 0; }
figure.half { display: inline-block; width: 49%; margin: .5em 0; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #555; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; font-size: .85em; }
.note { color: #8a5a00; background: #fff6e0; padding: .4em .6em; border-left: 3px solid #e0a800; }
.meta { color: #666; font-size: .9em; }
nav ul { columns: 2; }
"""


def format_value(value: Any, digits: int = 4) -> str:
    """A short text for a table cell: floats to ``digits`` significant digits, complex as a±bj."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (complex, np.complexfloating)):
        re_, im = float(np.real(value)), float(np.imag(value))
        if im == 0:
            return format_value(re_, digits)
        sign = "+" if im >= 0 else "-"
        return f"{format_value(re_, digits)}{sign}{format_value(abs(im), digits)}j"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}g}"
    if isinstance(value, np.ndarray):
        return format_value(value.tolist(), digits)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v, digits) for v in value)
    return str(value)


def _slug(text: str) -> str:
    s = re.sub(r"[^a-zA-Z0-9]+", "-", text.lower()).strip("-")
    return s or "item"


def _is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float, complex, np.number)) and not isinstance(value, bool)


@dataclass
class Table:
    """Rows of a table (each a mapping column -> value) with an optional caption."""

    rows: list[dict]
    columns: list[str]
    caption: str | None = None

    def to_html(self) -> str:
        head = "".join(f'<th class="text">{html.escape(str(c))}</th>' for c in self.columns)
        body = []
        for row in self.rows:
            cells = []
            for c in self.columns:
                v = row.get(c)
                cls = "" if _is_numeric(v) else ' class="text"'
                cells.append(f"<td{cls}>{html.escape(format_value(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (
            f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>"
            + "".join(body)
            + "</tbody></table>"
        )

    def to_text(self) -> str:
        """The table as aligned plain text (for terminals)."""
        cells = [[str(c) for c in self.columns]]
        cells += [[format_value(row.get(c)) for c in self.columns] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = [self.caption] if self.caption else []
        for k, r in enumerate(cells):
            lines.append("  ".join(v.rjust(w) for v, w in zip(r, widths)))
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


@dataclass
class Figure:
    """A PNG figure (rendered to bytes when added, so the matplotlib figure can be closed)."""

    name: str
    png: bytes
    caption: str | None = None
    width: int = 0
    height: int = 0
    half: bool = False


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
    ) -> Table:
        """A table from a sequence of mappings (column -> value).

        Parameters
        ----------
        rows : sequence of mapping
            One mapping per row. Missing cells stay empty.
        columns : sequence of str, optional
            Column order (default: the keys in order of first appearance).
        caption : str, optional
        """
        rows = [dict(r) for r in rows]
        if columns is None:
            columns = []
            for r in rows:
                columns += [k for k in r if k not in columns]
        table = Table(rows=rows, columns=list(columns), caption=caption)
        self.items.append(("table", table))
        return table

    def add_figure(
        self,
        fig,
        name: str,
        *,
        caption: str | None = None,
        dpi: int = 90,
        close: bool = True,
        half: bool = False,
    ) -> Figure:
        """Render a matplotlib figure to PNG and add it.

        Parameters
        ----------
        fig : matplotlib.figure.Figure
        name : str
            File stem (made unique within the report).
        caption : str, optional
        dpi : int
            Resolution of the PNG.
        close : bool
            Close the matplotlib figure afterwards (default True).
        half : bool
            Show it at half the page width (two such figures side by side).
        """
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        w, h = (int(round(v * dpi)) for v in fig.get_size_inches())
        if close:
            plt.close(fig)
        stem, k = _slug(name), 1
        unique = stem
        while unique in self._used:
            k += 1
            unique = f"{stem}-{k}"
        self._used.add(unique)
        figure = Figure(
            name=unique, png=buf.getvalue(), caption=caption, width=w, height=h, half=half
        )
        self.items.append(("figure", figure))
        return figure


class Report:
    """An HTML report made of sections; :meth:`write` puts it in a self-contained folder.

    Parameters
    ----------
    title : str
    intro : str, optional
        A paragraph under the title.
    """

    def __init__(self, title: str, *, intro: str | None = None) -> None:
        self.title = str(title)
        self.intro = intro
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
        return [it for s in self.sections for kind, it in s.items if kind == "figure"]

    @property
    def tables(self) -> list[Table]:
        return [it for s in self.sections for kind, it in s.items if kind == "table"]

    def __repr__(self) -> str:
        return (
            f"Report({self.title!r}: {len(self.sections)} sections, {len(self.tables)} tables, "
            f"{len(self.figures)} figures)"
        )

    @json_dict
    def to_dict(self) -> dict:
        """The report's content without the images (tables as lists of rows)."""
        out = {"title": self.title, "created": self.created.isoformat(), "sections": []}
        for s in self.sections:
            items = []
            for kind, it in s.items:
                if kind == "table":
                    rows = [{c: format_value(r.get(c)) for c in it.columns} for r in it.rows]
                    items.append({"table": rows, "caption": it.caption})
                elif kind == "figure":
                    items.append({"figure": f"figures/{it.name}.png", "caption": it.caption})
                else:
                    items.append({kind: it})
            out["sections"].append({"title": s.title, "items": items})
        return out

    def to_text(self) -> str:
        """The tables, notes and text of the report as plain text (figures listed by name)."""
        lines = [self.title, "=" * len(self.title)]
        for s in self.sections:
            lines += ["", s.title, "-" * len(s.title)]
            for kind, it in s.items:
                if kind == "table":
                    lines.append(it.to_text())
                elif kind == "figure":
                    lines.append(f"[figure: {it.name}.png]")
                elif kind == "note":
                    lines.append(f"NOTE: {it}")
                else:
                    lines.append(str(it))
        return "\n".join(lines)

    def _html(self) -> str:
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
            f'<p class="meta">written {self.created:%Y-%m-%d %H:%M} UTC by neuroctl</p>',
        ]
        if self.intro:
            parts.append(f"<p>{html.escape(self.intro)}</p>")
        if len(self.sections) > 2:
            parts.append("<nav><ul>")
            for i, s in enumerate(self.sections):
                parts.append(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>')
            parts.append("</ul></nav>")
        for i, s in enumerate(self.sections):
            parts.append(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>')
            for kind, it in s.items:
                if kind == "text":
                    parts.append(f"<p>{html.escape(it)}</p>")
                elif kind == "note":
                    parts.append(f'<p class="note">{html.escape(it)}</p>')
                elif kind == "pre":
                    parts.append(f"<pre>{html.escape(it)}</pre>")
                elif kind == "table":
                    parts.append(it.to_html())
                elif kind == "figure":
                    src = f"figures/{it.name}.png"
                    alt = html.escape(it.caption or it.name)
                    size = f' width="{it.width}" height="{it.height}"' if it.width else ""
                    cap = (
                        f"<figcaption>{html.escape(it.caption)}</figcaption>" if it.caption else ""
                    )
                    cls = ' class="half"' if it.half else ""
                    parts.append(f'<figure{cls}><img src="{src}" alt="{alt}"{size}>{cap}</figure>')
            parts.append("</section>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def write(self, folder) -> Path:
        """Write ``index.html`` and ``figures/*.png`` into ``folder``, atomically.

        The report is built in a temporary sibling folder which then replaces ``folder`` (an
        existing report there is replaced as a whole).

        Parameters
        ----------
        folder : str or Path

        Returns
        -------
        Path
            The written ``index.html``.
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
            (tmp / "figures").mkdir()
            for fig in self.figures:
                (tmp / "figures" / f"{fig.name}.png").write_bytes(fig.png)
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
