"""The HTML report: one self-contained file (images as PNG data URIs), version and command in its
header, empty cells explained, figures laid out for the width they are shown at, atomic writes,
and a page that Chromium shows at 1280 px with every image, no console error and no horizontal
scrollbar (checked on a screenshot too)."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import neuroctl.report as report_mod  # noqa: E402
from neuroctl._report_table import _DEFAULT_MISSING  # noqa: E402
from neuroctl.report import MIN_FONT_PT, Missing, Report, format_value  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIEWPORT = 1280  # px: the default width the report is laid out for

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Injected into a copy of the page: records each image's load status and shown width, script
# errors, failed resource loads (error events captured on the window), console.error/warn calls,
# and the page's scroll width against the viewport's.
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target && (e.target.src || e.target.href);
  window.__errors.push('error: ' + (e.message || (t && t.slice(0, 200))));
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
    return {src: (i.getAttribute('src') || '').slice(0, 200), width: i.naturalWidth,
            complete: i.complete, shown: i.getBoundingClientRect().width,
            display: parseFloat(i.dataset.displayWidth), min_font: parseFloat(i.dataset.minFontPt)};
  });
  var doc = document.documentElement;
  var page = {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth,
              innerWidth: window.innerWidth, scrollHeight: doc.scrollHeight};
  var pre = document.createElement('pre');
  pre.id = '__probe';
  pre.textContent = JSON.stringify({images: imgs, errors: window.__errors, page: page});
  document.body.appendChild(pre);
});
</script>"""


def _chromium(args: list[str], profile: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def chromium_check(index: Path, *, width: int = VIEWPORT) -> dict:
    """Open ``index`` (a copy with the probe injected) in headless Chromium, ``width`` px wide.

    Returns ``{"images": [...], "errors": [...], "console": [...], "page": {...}}``: each image's
    load status and shown width (CSS px), errors recorded by the page, the console lines
    Chromium logged (the page itself has no scripts, so any is a problem) and the page's
    ``scrollWidth``, ``clientWidth`` (the viewport less a vertical scrollbar), ``innerWidth``
    and ``scrollHeight``.
    """
    index = Path(index)
    html = index.read_text(encoding="utf-8")
    probe_page = index.with_name("__probe.html")
    probe_page.write_text(html.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory(prefix="neuroctl-chromium-") as profile:
            proc = _chromium(
                [
                    f"--window-size={width},900",
                    "--enable-logging=stderr",
                    "--v=0",
                    "--virtual-time-budget=10000",
                    "--dump-dom",
                    probe_page.as_uri(),
                ],
                profile,
            )
    finally:
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


def chromium_screenshot(index: Path, png: Path, *, width: int = VIEWPORT, height: int) -> Path:
    """A screenshot of ``index`` in headless Chromium, ``width`` x ``height`` px, to ``png``."""
    with tempfile.TemporaryDirectory(prefix="neuroctl-chromium-") as profile:
        proc = _chromium(
            [
                f"--window-size={width},{height}",
                "--hide-scrollbars",
                f"--screenshot={png}",
                Path(index).as_uri(),
            ],
            profile,
        )
    assert Path(png).is_file(), f"no screenshot; chromium stderr tail: {proc.stderr[-2000:]}"
    return Path(png)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install -y chromium); .ci/run installs it",
)


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tags, self.cells, self.captions, self.attrs = [], [], [], [], []
        self.ids, self.text = {}, {}
        self._in, self._id = None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.attrs.append((tag, attrs))
        if tag == "img":
            self.images.append(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] = tag
            self._id = attrs["id"]
            self.text[self._id] = ""
        if tag in ("td", "caption", "figcaption"):
            self._in = tag
            (self.cells if tag == "td" else self.captions).append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None
        if self._id is not None and self.ids.get(self._id) == tag:
            self._id = None

    def handle_data(self, data):
        if self._in == "td":
            self.cells[-1] += data
        elif self._in in ("caption", "figcaption"):
            self.captions[-1] += data
        if self._id is not None:
            self.text[self._id] += data


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR), read independently of matplotlib."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def sample_report(**kw) -> Report:
    rep = Report("Sample <report> & co", intro="Numbers & <tags> are escaped.", **kw)
    sec = rep.section("Tables", "A table of numbers.")
    sec.add_table(
        [{"name": "a", "value": 1.23456789, "pole": complex(-0.75, 3.38)}, {"name": "b", "n": 7}],
        caption="caption with <script>alert(1)</script>",
    )
    for k in range(2):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(np.arange(10) ** k)
        sec.add_figure(fig, "same name", caption=f"figure {k}")
    rep.section("Notes").add_note("a skipped part")
    return rep


def wide_report() -> Report:
    """What could push a page past 1280 px: a 14-column table, a long unbroken word, small
    multiples with tiny fonts, a wide full-width figure and long preformatted text."""
    rep = Report("Wide content", command="neuroctl demo --out " + "x" * 150)
    sec = rep.section("Wide", "a" * 300)
    cols = [f"a long column header number {i} [unit/s]" for i in range(14)]
    sec.add_table(
        [{c: 123456.789 * (i + 1) for c in cols} for i in range(3)] + [{cols[0]: None}],
        missing={cols[1]: "not computed in this run"},
    )
    sec.add_pre("y" * 400)
    for k in range(3):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax in axes:
            ax.plot(np.sin(np.arange(50) / (k + 2)), label="a signal")
            ax.set_title("a title", fontsize=6)
            ax.legend(fontsize=5)
            ax.tick_params(labelsize=5)
        sec.add_figure(fig, f"multiple {k}", half=True, caption="half width")
    fig, ax = plt.subplots(figsize=(16, 3))
    ax.imshow(np.random.default_rng(0).random((30, 160)), aspect="auto")
    sec.add_figure(fig, "wide", caption="a wide colourful image")
    return rep


# --- the file ----------------------------------------------------------------------------------


def test_report_is_one_file_with_every_image_a_png_data_uri(tmp_path):
    rep = sample_report()
    index = rep.write(tmp_path / "out")
    assert index == (tmp_path / "out" / "index.html").resolve()
    assert [p.name for p in index.parent.iterdir()] == ["index.html"]  # no side files
    parser = _Parser()
    text = index.read_text(encoding="utf-8")
    parser.feed(text)
    # no resource is loaded from anywhere: no scripts, styles sheets, frames or objects, and
    # every src/href is an embedded image or an anchor on the page
    assert not {"script", "link", "iframe", "object", "embed"} & set(parser.tags)
    for tag, attrs in parser.attrs:
        if "src" in attrs:
            assert tag == "img" and attrs["src"].startswith("data:image/png;base64,"), tag
        if "href" in attrs:
            assert attrs["href"].startswith("#") and attrs["href"][1:] in parser.ids
    assert "url(" not in text  # nor from the style sheet
    # escaped text never becomes markup
    assert "caption with <script>alert(1)</script>" in parser.captions
    assert len(parser.images) == 2
    for img, fig in zip(parser.images, rep.figures):
        data = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        assert data == fig.png
        assert png_size(data) == (int(img["width"]), int(img["height"]))
    ids = [img_id for img_id, tag in parser.ids.items() if tag == "figure"]
    assert ids == ["fig-same-name", "fig-same-name-2"]  # the repeated name was made unique
    # table cells are the values as format_value renders them
    assert parser.cells[:3] == ["a", format_value(1.23456789), format_value(complex(-0.75, 3.38))]
    assert format_value(1.23456789) == f"{1.23456789:.4g}"
    assert format_value(complex(-0.75, 3.38)) == "-0.75+3.38j"
    assert format_value(complex(1, -2)) == "1-2j"
    d = rep.to_dict()
    assert [it["figure"] for s in d["sections"] for it in s["items"] if "figure" in it] == [
        "same-name",
        "same-name-2",
    ]


def test_header_names_the_version_and_the_command(tmp_path, monkeypatch):
    index = sample_report(command="neuroctl report --out 'my report'").write(tmp_path / "r")
    parser = _Parser()
    parser.feed(index.read_text(encoding="utf-8"))
    assert f"neuroctl {metadata.version('neuroctl')} " in parser.text["version"]
    assert parser.text["command"] == "neuroctl report --out 'my report'"
    # by default the command line of the process, the console script shown by its name
    script = str(Path("/venv/bin/neuroctl"))
    monkeypatch.setattr("sys.orig_argv", ["/venv/bin/python3", script, "demo", "--out", "a b"])
    assert Report("t").command == "neuroctl demo --out 'a b'"
    monkeypatch.setattr("sys.orig_argv", ["/usr/bin/python3", "-m", "neuroctl.cli", "report"])
    assert Report("t").command == "python3 -m neuroctl.cli report"
    assert Report("t").to_dict()["version"] == metadata.version("neuroctl")


def test_empty_cells_read_na_with_a_footnote_saying_why(tmp_path):
    rep = Report("t", command="c")
    sec = rep.section("s")
    unstable = Missing("no step response: the closed loop is unstable")
    table = sec.add_table(
        [
            {"loop": "a", "overshoot": 12.5, "margin": 3.0},
            {"loop": "b", "overshoot": unstable, "margin": None},
            {"loop": "c", "overshoot": unstable},
        ],
        missing={"margin": "the loop has no crossover frequency"},
    )
    index = rep.write(tmp_path / "r")
    parser = _Parser()
    parser.feed(index.read_text(encoding="utf-8"))
    assert parser.cells == ["a", "12.5", "3", "b", "n/a1", "n/a2", "c", "n/a1", "n/a2"]
    assert parser.text["t1-n1"].strip() == f"1 n/a: {unstable.reason}"
    assert parser.text["t1-n2"].strip() == "2 n/a: the loop has no crossover frequency"
    assert table.footnotes() == [unstable.reason, "the loop has no crossover frequency"]
    text = table.to_text()
    assert "n/a(1)" in text and f"n/a(1): {unstable.reason}" in text
    # without a reason the footnote still says what n/a means
    generic = Report("t", command="c")
    generic.section("s").add_table([{"x": 1.0, "y": 2.0}, {"x": 3.0}])
    assert generic.tables[0].footnotes() == [_DEFAULT_MISSING]
    with pytest.raises(ValueError, match="reason"):
        Missing("")
    with pytest.raises(TypeError, match="rows"):
        sec.add_table({"x": 1})
    with pytest.raises(TypeError, match="missing"):
        sec.add_table([{"x": None}], missing=3)


def test_figures_are_sized_for_their_place_with_no_text_under_9_pt():
    rep = Report("t", command="c")
    sec = rep.section("s")
    shown = {}
    for half in (False, True):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3))
        for ax in axes:
            ax.plot([0, 1], [0, 1], label="line")
            ax.set_title("small", fontsize=5)
            ax.set_xlabel("x label", fontsize=20)  # large texts stay large
            ax.legend(fontsize=4)
            ax.tick_params(labelsize=4)
        fig.suptitle("tiny", fontsize=3)
        f = sec.add_figure(fig, "fig", half=half, close=False)
        fig.canvas.draw()
        # displayed size of a text of s pt: s * (shown px) / (figure width in px at 96 per in)
        scale = f.display_width / (fig.get_size_inches()[0] * 96)
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip()]
        ticks = [t for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()]
        assert ticks and all(t.get_fontsize() * scale >= MIN_FONT_PT - 1e-9 for t in ticks)
        assert all(t.get_fontsize() * scale >= MIN_FONT_PT - 1e-9 for t in texts)
        assert min(t.get_fontsize() * scale for t in texts) == pytest.approx(MIN_FONT_PT)
        assert f.min_font_pt == pytest.approx(MIN_FONT_PT)
        assert max(t.get_fontsize() * scale for t in texts) == pytest.approx(20.0)
        # every text inside the image (tight layout redone after the fonts grew)
        r = fig.canvas.get_renderer()
        hidden = set()  # labels of ticks outside the axes' limits: not drawn
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                lo, hi = sorted(axis.get_view_interval())
                for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                    if not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                        hidden |= {id(tick.label1), id(tick.label2)}
        for t in (t for t in texts if id(t) not in hidden):
            bb = t.get_window_extent(r)
            assert bb.x0 >= -1 and bb.y0 >= -1, t.get_text()
            assert bb.x1 <= fig.bbox.width + 1 and bb.y1 <= fig.bbox.height + 1, t.get_text()
        # the PNG is twice the display resolution: sharp on high-density screens
        assert png_size(f.png) == (f.width, f.height)
        assert abs(f.width - 2 * f.display_width) <= 1
        shown[half] = f.display_width
        plt.close(fig)
    assert shown[False] == report_mod.COLUMN_PX
    assert shown[True] == pytest.approx((report_mod.COLUMN_PX - report_mod._GAP_PX) / 2)
    with pytest.raises(ValueError, match="dpi"):
        sec.add_figure(plt.figure(), "bad", dpi=0)
    plt.close("all")


def test_report_write_replaces_atomically_and_refuses_foreign_folders(tmp_path, monkeypatch):
    target = tmp_path / "report"
    first = Report("first")
    first.section("s").add_text("first version")
    first.write(target)
    (target / "figures").mkdir()  # a report of an older version, with side files
    (target / "figures" / "old.png").write_bytes(b"")
    second = Report("second")
    second.section("s").add_text("second version")
    second.write(target)
    text = (target / "index.html").read_text()
    assert "second version" in text and "first version" not in text
    assert sorted(p.name for p in target.iterdir()) == ["index.html"]
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
    rep = sample_report(command="neuroctl demo")
    text = rep.to_text()
    assert "NOTE: a skipped part" in text
    assert format_value(1.23456789) in text
    assert f"neuroctl {metadata.version('neuroctl')}, made by: neuroctl demo" in text
    assert repr(rep) == "Report('Sample <report> & co': 2 sections, 1 tables, 2 figures)"


# --- in a browser ------------------------------------------------------------------------------


def assert_page_shows_well(index: Path, report: Report | None = None) -> dict:
    """Every image loads at the width the report laid it out for, no error, no horizontal
    scrollbar at 1280 px; returns the probe's result."""
    result = chromium_check(index)
    assert result["errors"] == [] and result["console"] == [], result
    images = result["images"]
    assert images and all(img["complete"] and img["width"] > 0 for img in images), images
    page = result["page"]
    assert page["innerWidth"] == VIEWPORT, page
    assert page["scrollWidth"] <= page["clientWidth"] <= page["innerWidth"], page
    for img in images:
        # shown at the width its fonts were sized for, so no text of the figure is under 9 pt
        assert abs(img["shown"] - img["display"]) <= 0.5, img
        assert img["min_font"] * img["shown"] / img["display"] >= MIN_FONT_PT - 0.01, img
        assert img["width"] >= 1.5 * img["shown"]  # sharp on high-density screens
    if report is not None:
        assert len(images) == len(report.figures)
        for img, fig in zip(images, report.figures):
            assert img["width"] == fig.width  # the PNG decoded at its full size
            assert img["display"] == fig.display_width
            assert img["min_font"] == pytest.approx(fig.min_font_pt, rel=1e-3)
    return result


def assert_screenshot_shows_it(index: Path, png: Path, height: int) -> np.ndarray:
    """A 1280 px wide screenshot of the whole page that is not blank; returns its RGB pixels."""
    shot = chromium_screenshot(index, png, height=height)
    assert png_size(shot.read_bytes()) == (VIEWPORT, height)
    img = matplotlib.image.imread(shot)[..., :3]  # float RGB in [0, 1], decoded by Pillow
    # not blank: text and figures darken a good part of it, and there is colour
    dark = (img.mean(axis=2) < 0.5).mean()
    assert 0.005 < dark < 0.9, dark
    assert (img.max(axis=2) - img.min(axis=2) > 0.3).mean() > 0.005
    # the page is centred in its column: nothing drawn in the outer margins of the 1280 px
    margin = (VIEWPORT - report_mod.COLUMN_PX - 32) // 2 - 4
    assert img[:, :margin].min() > 0.99 and img[:, -margin:].min() > 0.99
    return img


@needs_chromium
def test_report_loads_in_headless_chromium(tmp_path):
    rep = sample_report()
    assert_page_shows_well(rep.write(tmp_path / "rep"), rep)


@needs_chromium
def test_wide_content_scrolls_inside_its_box_not_the_page_and_the_screenshot_shows_it(tmp_path):
    rep = wide_report()
    index = rep.write(tmp_path / "rep")
    result = assert_page_shows_well(index, rep)
    assert_screenshot_shows_it(index, tmp_path / "shot.png", result["page"]["scrollHeight"])


# --- the demo's report -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """``neuroctl report --quick`` run as a user runs it, in its own process."""
    out = tmp_path_factory.mktemp("demo") / "my report"
    argv = [sys.executable, "-m", "neuroctl.cli", "report", "--quick", "--no-progress"]
    argv += ["--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "index.html", [Path(sys.executable).name, *argv[1:]]


def test_demo_report_is_one_file_with_its_version_command_and_explained_empty_cells(demo_report):
    index, argv = demo_report
    assert [p.name for p in index.parent.iterdir()] == ["index.html"]
    parser = _Parser()
    parser.feed(index.read_text(encoding="utf-8"))
    assert len(parser.images) >= 5  # space-time, speeds, arm steps, pole maps, verification
    for tag, attrs in parser.attrs:
        if "src" in attrs:
            assert tag == "img" and attrs["src"].startswith("data:image/png;base64,")
            data = base64.b64decode(attrs["src"].split(",", 1)[1], validate=True)
            assert png_size(data) == (int(attrs["width"]), int(attrs["height"]))
        if "href" in attrs:
            assert attrs["href"].startswith("#") and attrs["href"][1:] in parser.ids
    assert f"neuroctl {metadata.version('neuroctl')} " in parser.text["version"]
    assert parser.text["command"] == shlex.join(argv)
    # every n/a cell links to a footnote that says why
    na = [c for c in parser.cells if c.startswith("n/a")]
    notes = {i: t for i, t in parser.text.items() if re.fullmatch(r"t\d+-n\d+", i)}
    assert all(t.split(" n/a: ", 1)[1].strip() for t in notes.values())
    assert bool(na) == bool(notes)


@needs_chromium
def test_demo_report_shows_well_at_1280_px_and_its_screenshot_shows_it(demo_report, tmp_path):
    index, _ = demo_report
    result = assert_page_shows_well(index)
    assert len(result["images"]) >= 5
    height = min(result["page"]["scrollHeight"], 16000)
    img = assert_screenshot_shows_it(index, tmp_path / "demo.png", height)
    # the space-time diagrams are there: the red-yellow-green speed colours of the scatter
    green = (img[..., 1] > 0.5) & (img[..., 0] < 0.4) & (img[..., 2] < 0.5)
    assert green.mean() > 0.001


@needs_chromium
def test_chromium_check_detects_a_missing_image_a_console_error_and_a_wide_page(tmp_path):
    # the negative control: the checks above would notice a broken page
    rep = sample_report()
    index = rep.write(tmp_path / "rep")
    html = index.read_text()
    first = rep.figures[0].data_uri()
    broken = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nbroken").decode()
    html = html.replace(first, broken, 1).replace(
        "</body>",
        "<div style='width:2000px'>wide</div><script>console.error('boom')</script></body>",
    )
    index.write_text(html)
    result = chromium_check(index)
    assert [img["width"] for img in result["images"]][0] == 0
    assert result["images"][1]["width"] > 0
    assert any("boom" in e for e in result["errors"])
    assert any(e.startswith("error: data:image/png") for e in result["errors"])
    page = result["page"]
    assert page["scrollWidth"] > page["clientWidth"] and page["innerWidth"] == VIEWPORT
