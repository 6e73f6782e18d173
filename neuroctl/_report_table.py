"""Table cells of a report: values as short texts, and empty cells with the reason they are empty.

Part of :mod:`neuroctl.report` (which re-exports :class:`Table`, :class:`Missing` and
:func:`format_value`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_DEFAULT_MISSING = "no value: this quantity was not computed or is not defined for this row"


@dataclass(frozen=True)
class Missing:
    """A table cell without a value, and why: shown as "n/a" with ``reason`` as its footnote.

    Parameters
    ----------
    reason : str
        Why the cell is empty, e.g. ``"no step response: the closed loop is unstable"``.
    """

    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValueError(f"Missing: expected a non-empty reason, received {self.reason!r}")


def format_value(value: Any, digits: int = 4) -> str:
    """A short text for a table cell: floats to ``digits`` significant digits, complex as a±bj.

    ``None`` is the empty string and a :class:`Missing` value is ``"n/a"``.
    """
    if value is None:
        return ""
    if isinstance(value, Missing):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (complex, np.complexfloating)):
        as_complex = complex(value)
        re_, im = as_complex.real, as_complex.imag
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


def format_box(lower, upper) -> str:
    """A box as ``[lo_0, hi_0] x [lo_1, hi_1] x ...`` (4 significant digits per side)."""
    return " x ".join(f"[{a:.4g}, {b:.4g}]" for a, b in zip(np.ravel(lower), np.ravel(upper)))


def _is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float, complex, np.number)) and not isinstance(value, bool)


@dataclass
class Table:
    """Rows of a table (each a mapping column -> value) with an optional caption.

    A cell that is absent, ``None`` or a :class:`Missing` is empty: it reads "n/a" and points to
    a footnote with its reason (the cell's own, else ``missing[column]`` or ``missing`` when that
    is a string, else a generic one).
    """

    rows: list[dict]
    columns: list[str]
    caption: str | None = None
    missing: str | Mapping[str, str] | None = None

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        *,
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        missing: str | Mapping[str, str] | None = None,
    ) -> Table:
        """A table of ``rows`` (copied to dicts); ``columns`` defaults to the rows' keys in order
        of first appearance."""
        row_dicts = [dict(r) for r in rows]
        if columns is None:
            columns = []
            for r in row_dicts:
                columns += [k for k in r if k not in columns]
        return cls(rows=row_dicts, columns=list(columns), caption=caption, missing=missing)

    def _reason(self, column: str, value: Any) -> str | None:
        """The footnote of an empty cell, or None for a cell with a value."""
        if isinstance(value, Missing):
            return value.reason
        if value is not None:
            return None
        if isinstance(self.missing, str):
            return self.missing
        if isinstance(self.missing, Mapping) and column in self.missing:
            return str(self.missing[column])
        return _DEFAULT_MISSING

    def footnotes(self) -> list[str]:
        """The reasons of the empty cells, each once, in order of first appearance."""
        notes: list[str] = []
        for row in self.rows:
            for c in self.columns:
                reason = self._reason(c, row.get(c))
                if reason is not None and reason not in notes:
                    notes.append(reason)
        return notes

    def to_html(self, anchor: str = "t") -> str:
        """The table as HTML; ``anchor`` prefixes the ids of its footnotes (unique per page)."""
        notes = self.footnotes()
        head = "".join(f'<th class="text">{html.escape(str(c))}</th>' for c in self.columns)
        body = []
        for row in self.rows:
            cells = []
            for c in self.columns:
                v = row.get(c)
                reason = self._reason(c, v)
                if reason is not None:
                    k = notes.index(reason) + 1
                    cells.append(
                        f'<td class="na" title="{html.escape(reason)}">n/a<sup>'
                        f'<a href="#{anchor}-n{k}">{k}</a></sup></td>'
                    )
                    continue
                cls = "" if _is_numeric(v) else ' class="text"'
                cells.append(f"<td{cls}>{html.escape(format_value(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        out = (
            f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>'
            + "".join(body)
            + "</tbody></table></div>"
        )
        if notes:
            out += '<ol class="footnotes">' + "".join(
                f'<li id="{anchor}-n{k}"><sup>{k}</sup> n/a: {html.escape(r)}</li>'
                for k, r in enumerate(notes, 1)
            )
            out += "</ol>"
        return out

    def to_text(self) -> str:
        """The table as aligned plain text (for terminals); empty cells read "n/a"."""
        notes = self.footnotes()

        def cell(c, v):
            reason = self._reason(c, v)
            if reason is None:
                return format_value(v)
            return "n/a" if len(notes) == 1 else f"n/a({notes.index(reason) + 1})"

        cells = [[str(c) for c in self.columns]]
        cells += [[cell(c, row.get(c)) for c in self.columns] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = [self.caption] if self.caption else []
        for k, r in enumerate(cells):
            lines.append("  ".join(v.rjust(w) for v, w in zip(r, widths)))
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        if len(notes) == 1:
            lines.append(f"n/a: {notes[0]}")
        else:
            lines += [f"n/a({k}): {r}" for k, r in enumerate(notes, 1)]
        return "\n".join(lines)
