"""The HTML report: self-contained folder, atomic writes, tables and figures as given, and a page
that loads in headless Chromium with every image and no console error."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from neuroctl.report import Report, format_value  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Injected into a copy of the page: records each image's load status, script errors, failed
# resource loads (error events captured on the window) and console.error/warn calls.
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href))));
}, true);
['error', 'warn'].forEach(function (level) {
  var orig = console[level];
  console[level] = function () {
    window.__errors.push(level + ': ' + Array.prototype.join.call(arguments, ' '));
    return orig.apply(console, arguments);
  };
});
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return {src: i.getAttribute('src'), width: i.naturalWidth, complete: i.complete};
  });
  var pre = document.createElement('pre');
  pre.id = '__probe';
  pre.textContent = JSON.stringify({images: imgs, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def chromium_check(index: Path) -> dict:
    """Open ``index`` (a copy with the probe injected) in headless Chromium.

    Returns ``{"images": [...], "errors": [...], "console": [...]}``: image load status, errors
    recorded by the page, and console lines Chromium logged (the page itself has no scripts, so
    any console output other than the probe's is a problem).
    """
    index = Path(index)
    html = index.read_text(encoding="utf-8")
    probe_page = index.with_name("__probe.html")
    probe_page.write_text(html.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="neuroctl-chromium-") as profile:
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=10000",
                "--dump-dom",
                probe_page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    probe_page.unlink()
    dom = proc.stdout
    start = dom.find('<pre id="__probe">')
    assert start >= 0, f"the probe did not run; chromium stderr tail: {proc.stderr[-2000:]}"
    end = dom.find("</pre>", start)
    payload = dom[start + len('<pre id="__probe">') : end]
    payload = payload.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    result = json.loads(payload.replace("&amp;", "&"))
    result["console"] = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return result


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install -y chromium); .ci/run installs it",
)


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tags, self.cells, self.captions = [], [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag in ("td", "caption", "figcaption"):
            self._in = tag
            (self.cells if tag == "td" else self.captions).append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "td":
            self.cells[-1] += data
        elif self._in in ("caption", "figcaption"):
            self.captions[-1] += data


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR), read independently of matplotlib."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def sample_report() -> Report:
    rep = Report("Sample <report> & co", intro="Numbers & <tags> are escaped.")
    sec = rep.section("Tables", "A table of numbers.")
    sec.add_table(
        [{"name": "a", "value": 1.23456789, "pole": complex(-0.75, 3.38)}, {"name": "b", "n": 7}],
        caption="caption with <script>alert(1)</script>",
    )
    for k in range(2):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(np.arange(10) ** k)
        sec.add_figure(fig, "same name", caption=f"figure {k}", dpi=50)
    rep.section("Notes").add_note("a skipped part")
    return rep


def test_report_folder_is_self_contained_and_matches_its_content(tmp_path):
    rep = sample_report()
    index = rep.write(tmp_path / "out")
    assert index == (tmp_path / "out" / "index.html").resolve()
    parser = _Parser()
    parser.feed(index.read_text(encoding="utf-8"))
    # escaped text never becomes markup: the only tags are the report's own
    assert "script" not in parser.tags
    assert "caption with <script>alert(1)</script>" in parser.captions
    # every image is a relative path to a PNG inside the folder, with the declared size
    assert len(parser.images) == 2
    names = set()
    for img in parser.images:
        src = img["src"]
        assert not src.startswith(("http:", "https:", "/", "file:"))
        path = index.parent / src
        assert path.is_file()
        assert png_size(path) == (int(img["width"]), int(img["height"]))
        names.add(src)
    assert len(names) == 2  # the repeated name was made unique
    assert sorted(p.name for p in (index.parent / "figures").iterdir()) == sorted(
        Path(n).name for n in names
    )
    # table cells are the values as format_value renders them
    assert parser.cells[:3] == ["a", format_value(1.23456789), format_value(complex(-0.75, 3.38))]
    assert format_value(1.23456789) == f"{1.23456789:.4g}"
    assert format_value(complex(-0.75, 3.38)) == "-0.75+3.38j"
    assert format_value(complex(1, -2)) == "1-2j"
    # to_dict points at the same files
    d = rep.to_dict()
    figs = [it["figure"] for s in d["sections"] for it in s["items"] if "figure" in it]
    assert set(figs) == names


def test_report_write_replaces_atomically_and_refuses_foreign_folders(tmp_path, monkeypatch):
    target = tmp_path / "report"
    first = Report("first")
    first.section("s").add_text("first version")
    first.write(target)
    second = Report("second")
    second.section("s").add_text("second version")
    second.write(target)
    text = (target / "index.html").read_text()
    assert "second version" in text and "first version" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary leftovers

    # a failure while writing leaves the earlier report untouched and no temporary folder
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", boom)
    with pytest.raises(OSError, match="disk full"):
        first.write(target)
    monkeypatch.undo()
    assert "second version" in (target / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]

    # a folder holding something else is never replaced
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="other files"):
        first.write(foreign)
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_report_text_lists_tables_and_notes():
    rep = sample_report()
    text = rep.to_text()
    assert "NOTE: a skipped part" in text
    assert format_value(1.23456789) in text
    assert repr(rep) == "Report('Sample <report> & co': 2 sections, 1 tables, 2 figures)"


@needs_chromium
def test_report_loads_in_headless_chromium(tmp_path):
    index = sample_report().write(tmp_path / "rep")
    result = chromium_check(index)
    assert len(result["images"]) == 2
    assert all(img["complete"] and img["width"] > 0 for img in result["images"]), result
    assert result["errors"] == [] and result["console"] == [], result


@needs_chromium
def test_chromium_check_detects_a_missing_image_and_a_console_error(tmp_path):
    # the negative control: the checker above would notice a broken page
    index = sample_report().write(tmp_path / "rep")
    first = next((index.parent / "figures").iterdir())
    first.unlink()
    html = index.read_text().replace("</body>", "<script>console.error('boom')</script></body>")
    index.write_text(html)
    result = chromium_check(index)
    broken = [img for img in result["images"] if img["width"] == 0]
    assert [Path(img["src"]).name for img in broken] == [first.name]
    assert any("boom" in e for e in result["errors"])
    assert any(first.name in e for e in result["errors"])
    assert os.path.exists(index)
