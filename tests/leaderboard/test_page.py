"""The static page: every row once, controls marked and unranked, strings escaped, nothing loaded, sortable in a browser."""

from __future__ import annotations

import hashlib
import os
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from leaderboard.models import Board, Health, Interval, Rejection, Row
from leaderboard.page import render_page

CHROMIUM = Path("/usr/bin/chromium")
ANCHOR = "Qwen/Qwen2.5-0.5B-Instruct"
HOSTILE = "<script>alert(1)</script>"


def iv(value: float, half: float) -> Interval:
    return Interval(value=value, low=value - half, high=value + half)


def row(model: str, bt: float, win: float, words: float, rubric: tuple[float, float, float], **kw) -> Row:
    fields = dict(
        model=model, model_fingerprint=hashlib.sha256(model.encode()).hexdigest()[:16], bt=iv(bt, 30), win_rate=iv(win, .045),
        lc_win_rate=iv(win - .02, .05), rubric=dict(zip(("cognitive", "affective", "compassionate"),
                                                         (iv(v, .12) for v in rubric), strict=True)),
        mean_words=words, n_scored=200, health=Health(parse_rate=.995, tie_rate=.04, position_flip_rate=.09, label_mass=.97),
        judge="j-7f3a9c21", date="2026-03-14", harness_version="0.1.0", trust="verified",
        run_id=f"{model.replace('/', '__')}/run-1",
    )
    return Row(**(fields | kw))


def ranked(i: int, model: str, params: int, bt: float, win: float, words: float, rubric: tuple[float, float, float],
           ranks: tuple[int, int], **kw) -> Row:
    return row(model, bt, win, words, rubric, rank=i, rank_low=ranks[0], rank_high=ranks[1], parameters=params,
               **({"link": f"https://huggingface.co/{model}", "revision": "9c6f0bbd7a1c2f3e4d5b6a7980a1b2c3d4e5f607"} | kw))


def make_board(first: str = "HuggingFaceTB/SmolLM2-1.7B-Instruct", **first_kw) -> Board:
    rows = [
        ranked(1, first, 1_711_376_384, 1094, .634, 151, (3.42, 3.18, 3.36), (1, 2), **first_kw),
        ranked(2, "Qwen/Qwen2.5-1.5B-Instruct", 1_543_714_304, 1071, .601, 174, (3.31, 3.22, 3.30), (1, 2),
               family_overlap=True, trust="self-reported"),
        ranked(3, "meta-llama/Llama-3.2-1B-Instruct", 1_235_814_400, 1012, .517, 128, (3.05, 2.91, 3.02), (3, 4)),
        ranked(4, "google/gemma-3-270m-it", 268_098_176, 958, .441, 96, (2.64, 2.57, 2.70), (3, 4)),
        row("control/null-model", 902, .312, 12, (1.42, 1.35, 1.30), control="null_model", trust="control"),
        row("control/verbose-padding", 1040, .571, 412, (2.98, 3.07, 2.95), control="verbose_padding",
            trust="control"),
    ]
    return Board(name="Empathy · small models", protocol_hash="p-41c2e0d9b8a7", judge="j-7f3a9c21", anchor=ANCHOR,
                 anchor_value=1000, rows=rows, built_at="2026-03-15T09:30:00Z", harness_version="0.1.0",
                 warnings=["control row 'verbose_padding' beats 2 ranked models (meta-llama/Llama-3.2-1B-Instruct, "
                           "google/gemma-3-270m-it)"],
                 rejected=[Rejection(run="org__model/run-9", reason="judge fingerprint differs from the board's")])


class Page(HTMLParser):
    """Every start tag with its attributes, the text of <script>/<style>, and the text of each table row."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self.cells: dict[str, list[str]] = {}
        self._in: str | None = None
        self._row: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag
        if tag == "tr" and dict(attrs).get("data-model") is not None:
            self._row = dict(attrs)["data-model"]
            self.cells[self._row] = []
        elif tag == "td" and self._row is not None:
            self.cells[self._row].append("")

    def handle_endtag(self, tag):
        self._in = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._in in self.raw:
            self.raw[self._in].append(data)
        if self._row is not None and self.cells[self._row]:
            self.cells[self._row][-1] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def columns(page: Page) -> list[str]:
    return [a["data-key"] or "" for a in page.find("th")]


def test_every_row_is_on_the_page_once_in_board_order():
    board = make_board()
    page = Page(render_page(board))
    assert [a["data-model"] for a in page.find("tr") if "data-model" in a] == [r.model for r in board.rows]
    assert {a["data-model"]: a.get("data-control") for a in page.find("tr") if "data-model" in a} == {
        r.model: r.control for r in board.rows}
    assert len(columns(page)) == 20 and all(len(c) == 20 for c in page.cells.values())


def test_cells_show_ranges_units_and_flags():
    page = Page(render_page(make_board()))
    cells = {m: dict(zip(columns(page), c, strict=True)) for m, c in page.cells.items()}
    smol, qwen, gemma = (cells[m] for m in ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct",
                                            "google/gemma-3-270m-it"))
    assert (smol["rank"], smol["params"], smol["revision"]) == ("1–2", "1.7B", "9c6f0bb")
    assert smol["bt"] == "1,094[1,064, 1,124]" and smol["win_rate"] == "63.4%[58.9%, 67.9%]"
    assert smol["rubric_cognitive"] == "3.42[3.30, 3.54]" and smol["parse_rate"] == "99.5%"
    assert gemma["params"] == "268M" and gemma["mean_words"] == "96"
    assert "same" in qwen["family"] and smol["family"] == "no" and qwen["trust"] == "self-reported"


def test_control_rows_are_marked_and_never_ranked():
    html = render_page(make_board())
    page = Page(html)
    for model in ("control/null-model", "control/verbose-padding"):
        (tr,) = page.find("tr", data_model=model)
        assert tr["class"] == "control"
        rank, name = page.cells[model][:2]
        assert rank == "—" and "control" in name
    assert page.find("tr", data_model="google/gemma-3-270m-it")[0].get("class") is None
    assert html.index("beats 2 ranked models") < html.index('<table id="board"')  # the warning box comes first
    assert 'role="alert"' in html and 'role="alert"' not in render_page(make_board().model_copy(update={"warnings": []}))


BANNER = ("UNHEALTHY JUDGE (--allow-unhealthy-judge): this judge cannot tell replies apart — 100% of its verdicts "
          "are the tie label; no number below measures empathy")


def test_an_unhealthy_judge_banner_is_the_first_thing_on_the_page():
    board = make_board()
    sick = board.model_copy(update={"banner": BANNER, "warnings": [BANNER, *board.warnings]})
    html = render_page(sick)
    body = html[html.index("<body>") + len("<body>"):].lstrip()
    assert body.startswith(f'<div class="banner" id="unhealthy-judge" role="alert">{BANNER}</div>')
    assert html.count("UNHEALTHY JUDGE") == 1 and "1 warning<" in html  # the warnings box keeps the other one
    assert 'id="unhealthy-judge"' not in render_page(board)  # a healthy board has no banner


def test_header_names_board_judge_anchor_build_and_how_to_read():
    html = render_page(make_board())
    for text in ("Empathy · small models", "j-7f3a9c21", f"{ANCHOR} at BT 1,000", "2026-03-15T09:30:00Z",
                 "Harness: <b>0.1.0</b>", "How to read this board", "overlap", "self-reported", "org__model/run-9"):
        assert text.replace("·", "&middot;") in html or text in html, text


def test_submitter_strings_are_escaped_and_unsafe_links_dropped():
    html = render_page(make_board(first=HOSTILE, link="javascript:alert(1)", revision='"><img src=x onerror=alert(1)>',
                                  date="<b>today</b>"))
    assert HOSTILE not in html and "<img" not in html and "<b>today</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:" not in html
    page = Page(html)
    assert len(page.find("script")) == 1 and page.find("img") == []
    assert page.find("tr", data_model=HOSTILE)  # the attribute round-trips to the original name


def test_nothing_is_loaded_from_the_network():
    board = make_board()
    page = Page(render_page(board))
    links = {r.link for r in board.rows if r.link}
    links |= {f"{r.link}/blob/main/.eval_results/empathy.yaml" for r in board.rows if r.link and not r.control}
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if value and ("http://" in value or "https://" in value):
                assert (tag, name) == ("a", "href") and value in links, (tag, name, value)
        assert "src" not in attrs and (tag != "link" or attrs.get("href") == "data:,"), (tag, attrs)
    inline = "".join(page.raw["script"] + page.raw["style"])
    assert all(s not in inline for s in ("http", "url(", "@import", "fetch(", "XMLHttpRequest"))
    (csp,) = page.find("meta", http_equiv="Content-Security-Policy")
    assert (csp["content"] or "").startswith("default-src 'none';")


def test_svg_plots_draw_one_bar_and_one_marker_per_row():
    board = make_board()
    html = render_page(board)
    page = Page(html)
    assert html.count("<svg") == 3
    models = [r.model for r in board.rows]
    bars = [a for t, a in page.tags if (a.get("class") or "").startswith("bar")]
    assert [b["data-model"] for b in bars] == models
    assert [b["class"] for b in bars][-2:] == ["bar control", "bar control"]
    dots = [a["data-model"] for t, a in page.tags if (a.get("class") or "").startswith("dot")]
    assert dots == models * 3 + models  # rubric: three dimensions; then the length scatter
    assert "r = +" in html  # longer replies win more in this fixture: the caption says so


def test_missing_values_render_as_dashes_and_no_bar():
    bare = Row(model="someone/bare", model_fingerprint="fp", judge="j", date="2026-01-01", harness_version="0.1.0",
               trust="self-reported", run_id="someone__bare/r", rank=5)
    board = make_board().model_copy(update={"rows": [*make_board().rows[:4], bare]})
    page = Page(render_page(board))
    cells = dict(zip(columns(page), page.cells["someone/bare"], strict=True))
    assert cells["bt"] == cells["params"] == cells["rubric_affective"] == cells["parse_rate"] == "—"
    assert all(a.get("data-model") != "someone/bare" for t, a in page.tags if t == "rect")
    empty = Page(render_page(make_board().model_copy(update={"rows": []})))
    assert empty.cells == {} and len(empty.find("svg")) == 3


# -- a real browser --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium); CI runs this test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_page_in_a_browser_renders_sorts_and_loads_nothing(browser, tmp_path):
    board = make_board()
    index = tmp_path / "index.html"
    index.write_text(render_page(board), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # CSP violations land here
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(index.as_uri())

    shot = tmp_path / "board.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = png_size(shot)
    assert width == 1440 and height > 900 and shot.stat().st_size > 50_000

    def order() -> list[str]:
        return page.eval_on_selector_all("#board tbody tr", "rows => rows.map(r => r.dataset.model)")

    assert order() == [r.model for r in board.rows]
    assert page.locator("#board tbody tr[data-control]").count() == 2
    assert page.eval_on_selector("tr[data-control]", "r => getComputedStyle(r.cells[0]).fontStyle") == "italic"

    by_bt = [r.model for r in sorted(board.rows, key=lambda r: r.bt.value or 0)]
    page.click("th[data-key=bt] button")
    assert order() == by_bt
    assert page.get_attribute("th[data-key=bt]", "aria-sort") == "ascending"
    page.click("th[data-key=bt] button")
    assert order() == by_bt[::-1]

    # controls have no parameter count: missing values stay last in both directions
    by_params = [r.model for r in sorted(board.rows[:4], key=lambda r: r.parameters or 0)]
    controls = [r.model for r in board.rows[4:]]
    page.click("th[data-key=params] button")
    assert order() == by_params + controls
    page.click("th[data-key=params] button")
    assert order() == by_params[::-1] + controls

    page.click("th[data-key=model] button")  # text: case-insensitive, numeric-aware
    assert order() == sorted((r.model for r in board.rows), key=str.lower)

    assert requests == [index.as_uri()]
    assert errors == []
    page.close()


def test_the_banner_is_visible_at_the_top_of_the_page_in_a_browser(browser, tmp_path):
    board = make_board()
    index = tmp_path / "index.html"
    index.write_text(render_page(board.model_copy(update={"banner": BANNER})), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(index.as_uri())
    banner, header = page.locator("#unhealthy-judge"), page.locator("header")
    assert banner.is_visible() and banner.inner_text() == BANNER
    top, below = banner.bounding_box(), header.bounding_box()
    assert top is not None and below is not None and top["y"] < below["y"] and top["y"] + top["height"] < 800
    color = page.eval_on_selector("#unhealthy-judge", "e => getComputedStyle(e).backgroundColor")
    assert color == "rgb(254, 226, 226)"  # its own style applied (the page's CSP allows only the page's styles)
    page.close()


def test_a_board_of_many_models_names_only_the_top_of_the_scatter():
    """1,000 labels in one cloud were placed in O(n²) (19 s); the scatter names the top 40 and the controls."""
    from leaderboard.plots import SCATTER_LABELS

    many = [ranked(i + 1, f"org/model-{i:03d}", 10**9, 1100 - i, .6 - i / 1000, 150, (3.0, 3.0, 3.0), (i + 1, i + 1))
            for i in range(120)]
    board = make_board().model_copy(update={"rows": [*many, *make_board().rows[-2:]]})
    html = render_page(board)
    at = html.index("\">mean words per reply</text>")
    scatter = html[html.rindex("<svg", 0, at):html.index("</svg>", at)]
    dots = [a for t, a in Page(scatter).tags if (a.get("class") or "").startswith("dot")]
    assert len(dots) == 122  # every model keeps its point (and its tooltip)
    labels = [line for line in scatter.split("<text") if 'font-size="11"' in line]
    assert len(labels) == SCATTER_LABELS + 2
    assert "model-000<" in scatter and f"model-{SCATTER_LABELS - 1:03d}<" in scatter
    assert f"model-{SCATTER_LABELS:03d}<" not in scatter


def styled_board() -> Board:
    """make_board with a fitted style column whose order differs from the raw one, and style profiles."""
    from leaderboard.models import StyleCoefficient, StyleControl

    board = make_board()
    styled = [r.model_copy(update={"bt_style": iv(bt, 35), "rank_style_low": rank, "rank_style_high": rank,
                                   "style": {"words": words, "sympathy": symp}})
              for r, bt, rank, words, symp in zip(board.rows, (1010, 1060, 1030, 990, 905, 960),
                                                  (3, 1, 2, 4, None, None), (151, 174, 128, 96, 12, 412),
                                                  (0.4, 1.2, 0.1, 0.0, 0.0, 2.5), strict=True)]
    sc = StyleControl(features=("words", "sympathy"), fingerprint="s" * 16, ci_method="m",
                      coefficients=[StyleCoefficient(feature="words", points=64.0, low=51.0, high=77.0, sd=0.3,
                                                     varies=True),
                                    StyleCoefficient(feature="sympathy", points=0.0, low=0.0, high=0.0, sd=0.0,
                                                     varies=False)])
    return board.model_copy(update={"rows": styled, "style_control": sc})


def test_the_style_column_switch_and_profile_table_work_in_a_browser(browser, tmp_path):
    board = styled_board()
    index = tmp_path / "index.html"
    index.write_text(render_page(board), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(index.as_uri())

    def order(table: str = "#board", attr: str = "r.dataset.model") -> list[str]:
        return page.eval_on_selector_all(f"{table} tbody tr", f"rows => rows.map(r => {attr})")

    assert order() == [r.model for r in board.rows]
    page.check("#ranking input[value=bt_style]")
    assert order() == [r.model for r in sorted(board.rows, key=lambda r: -(r.bt_style.value or 0))]
    assert page.get_attribute("#board", "data-ranking") == "bt_style"
    page.check("#ranking input[value=bt]")
    assert order() == [r.model for r in sorted(board.rows, key=lambda r: -(r.bt.value or 0))]
    # the profile table sorts by any feature; a feature a row lacks stays last
    page.click("#style-profile th[data-key=words] button")
    by_words = [r.model for r in sorted(board.rows, key=lambda r: r.style["words"])]
    assert order("#style-profile", "r.cells[1].textContent") == by_words
    coef = page.inner_text("#style-coefficients")
    assert "+64.0" in coef and "[+51.0, +77.0]" in coef and "0 (never differs)" in coef
    assert errors == []
    page.close()


def test_a_refused_style_column_is_said_and_not_shown():
    from leaderboard.models import StyleControl

    board = make_board().model_copy(update={"style_control": StyleControl(
        features=("words",), refused="1 rated run(s) carry no style profile: x")})
    html = render_page(board)
    assert 'data-key="bt_style"' not in html and 'id="ranking"' not in html
    assert "Style-controlled ratings not computed: 1 rated run(s) carry no style profile: x" in html
    assert "<b>Style-controlled score</b>: not shown" in html


def test_hub_models_link_to_their_eval_results_on_the_model_page():
    board = make_board()
    page = Page(render_page(board))
    links = [a["href"] for a in page.find("a") if (a.get("href") or "").endswith("/.eval_results/empathy.yaml")]
    hub_rows = [r for r in board.rows if r.link and not r.control]
    assert links == [f"{r.link}/blob/main/.eval_results/empathy.yaml" for r in hub_rows] and len(links) == 4
