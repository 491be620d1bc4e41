"""The report's web page (``reports/index.html``): what it holds, checked on the HTML, and how it behaves,
checked in a real headless Chromium driven through Selenium (skipped, with the reason, where there is no
browser: ``apt-get install chromium chromium-driver`` and ``pip install selenium``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from benchmark.cli import main
from benchmark.report.build import write_html
from benchmark.report.gather import gather
from benchmark.report.naming import display_method
from benchmark.report.page_tables import delta_class
from benchmark.report.sections import tabulate
from benchmark.results import to_table, write_cell
from tests.test_report import _row

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WIDTH = 1280
TABLE = "t-smoke_smoke_tiny_ipc1_fast"  # the smoke suite's one same-model table
BACKBONE = "tiny_vit"
MB = 2**20


@dataclass
class Ran:
    code: int
    out: str
    err: str


def _cli(*args: str) -> Ran:
    """``python -m benchmark ARGS`` in this process (its imports are paid once), with what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Ran(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke suite's results and the report `python -m benchmark report` wrote for them."""
    base = tmp_path_factory.mktemp("page")
    results, out = base / "results", base / "reports"
    ran = _cli("run", "--suite", "smoke", "--results", str(results), "--no-progress")
    assert ran.code == 0, ran.err
    made = _cli("report", "--results", str(results), "--out", str(out))
    assert made.code == 0, made.err
    return results, out, made.out


class _Page(HTMLParser):
    """Every src/href of the page, and the text of one table's body rows (its cells, the row name first)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: list[str] = []
        self.rows: list[list[str]] = []
        self._table, self._depth, self._main, self._cell = table_id, 0, False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("src", "href") if attrs.get(k)]
        self.ids += [attrs["id"]] if attrs.get("id") else []
        if tag == "table" and (self._depth or attrs.get("id") == self._table):
            self._depth += 1  # tables nested in the details rows count too
        if self._depth == 1 and tag == "tr":
            self._main = "main" in (attrs.get("class") or "")
            if self._main:
                self.rows.append([])
        if self._main and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if self._cell is not None and tag in ("td", "th"):
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr":
            self._main = False
        if tag == "table" and self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parsed(path: Path, table_id: str = TABLE) -> _Page:
    page = _Page(table_id)
    page.feed(path.read_text())
    return page


def _expected(out: Path) -> dict[str, str]:
    """Method display name -> "mean ± std" of the smoke table's same-model cells, from aggregated.csv."""
    agg = pd.read_csv(out / "aggregated.csv", keep_default_na=False)
    same = agg[(agg["eval_backbone"] == BACKBONE) & agg["distill_backbone"].isin([BACKBONE, ""])]
    return {display_method(r["method"]): f"{r['mean']:.2f} ± {r['std']:.2f}" for r in same.to_dict("records")}


# ------------------------------------------------------------------------ the page, read as HTML


def test_report_writes_the_page_with_the_aggregated_numbers(smoke):
    results, out, printed = smoke
    page = out / "index.html"
    assert page.is_file() and f"open {page.resolve().as_uri()}" in printed
    parsed = _parsed(page)
    expected = _expected(out)
    assert len(expected) == 7  # the smoke suite's methods
    assert {r[0]: r[1] for r in parsed.rows} == expected
    assert [r[0] for r in parsed.rows][-1] == display_method("full_data")  # the reference last
    assert page.stat().st_size < 2 * MB
    assert len(parsed.ids) == len(set(parsed.ids))  # every anchor and details row found by its own id


def test_page_requests_nothing_from_the_network_and_its_files_exist(smoke):
    _, out, _ = smoke
    parsed = _parsed(out / "index.html")
    files = [link for link in parsed.links if not link.startswith(("#", "data:"))]
    assert files and not [link for link in files if re.match(r"^[a-z]+:", link) or link.startswith("//")]
    missing = [link for link in files if not (out / link).is_file()]
    assert missing == []
    images = [link for link in files if link.endswith(".png")]
    assert all((out / link).read_bytes().startswith(PNG_MAGIC) for link in images)
    # the LGM set and the four selected real-image sets, one image per class of the smoke data's 4
    grids = sorted({Path(link).parent.name for link in images if link.startswith("images/")})
    assert grids == [f"smoke_tiny_{m}_ipc1_seed0_grid" for m in
                     ("centroids", "herding", "kmeans", "lgm-smoke", "neighbors")]
    assert sum(link.startswith("images/") for link in images) == 5 * 4
    text = (out / "index.html").read_text()
    assert "Distilled images" in text and "Selected real images" in text and "Trouser" in text


def test_csv_beside_the_page_holds_the_tables_numbers(smoke):
    _, out, _ = smoke
    csv = pd.read_csv(out / "smoke_smoke_tiny_ipc1_fast.csv", keep_default_na=False)
    agg = pd.read_csv(out / "aggregated.csv", keep_default_na=False)
    same = agg[(agg["eval_backbone"] == BACKBONE) & agg["distill_backbone"].isin([BACKBONE, ""])]
    merged = csv.merge(same, on=["method", "eval_backbone"], suffixes=("", "_agg"))
    assert len(merged) == len(csv) == 7
    assert (merged["mean"] - merged["mean_agg"]).abs().max() < 1e-4
    candidates = csv[csv["method"] != "full_data"]
    best = candidates["mean"].round(2).max()
    assert sorted(csv.loc[csv["bold"], "method"]) == sorted(candidates.loc[candidates["mean"].round(2) == best,
                                                                          "method"])


def test_details_hold_the_cells_provenance(smoke):
    results, out, _ = smoke
    text = (out / "index.html").read_text()
    rows = pd.concat([pd.read_parquet(p) for p in (results / "cells" / "smoke").glob("*.parquet")])
    cells = rows.drop_duplicates("cell_id").to_dict("records")
    assert len(cells) == 8
    for rec in cells:
        assert str(results / "cells" / "smoke" / f"{rec['cell_id']}.parquet") in text
        assert rec["config_hash"] in text and rec["eval_weight_sha256"] in text and rec["train_fingerprint"] in text
    assert text.count("&#34;protocol&#34;: &#34;fast&#34;") == 8  # each cell's probe settings, one key a line


def test_header_counts_match_status_and_stale_cells_are_counted(smoke, tmp_path):
    results, _, _ = smoke
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    cells = sorted((copy / "cells" / "smoke").glob("*.parquet"))
    cells[0].unlink()  # one cell missing
    frame = pd.read_parquet(cells[1])  # one stale: same cell, other settings
    write_cell(cells[1], frame.assign(config_hash="0" * 16).to_dict("records"))
    status = _cli("status", "--results", str(copy), "--suite", "smoke")
    assert "suite smoke: 8 cells: 6 done, 0 failed, 1 missing, 1 invalid" in status.out, status.out
    made = _cli("report", "--results", str(copy), "--out", str(tmp_path / "out"), "--html-only")
    assert made.code == 0, made.err
    text = (tmp_path / "out" / "index.html").read_text()
    counts = re.search(r'<th scope="row">smoke</th>(.*?)</tr>', text, re.S).group(1)
    assert re.findall(r'class="badge[^"]*">(\d+)', counts) == ["6", "1", "0", "1"]  # current stale failed missing
    assert "1 invalid" in counts
    assert "left out 1 stale cells" in text and "--all" in text


def test_html_only_writes_just_the_page_and_what_it_shows(smoke, tmp_path):
    results, _, _ = smoke
    out = tmp_path / "html"
    made = _cli("report", "--results", str(results), "--out", str(out), "--html-only")
    assert made.code == 0, made.err
    suffixes = {p.suffix for p in out.rglob("*") if p.is_file()}
    assert suffixes == {".html", ".csv", ".png"}
    assert not (out / "summary.md").exists() and not (out / "tables.tex").exists()
    parsed = _parsed(out / "index.html")
    assert all((out / link).is_file() for link in parsed.links if not link.startswith(("#", "data:")))


def test_a_copied_results_directory_reported_from_elsewhere_shows_its_images(smoke, tmp_path, monkeypatch):
    # rows keep the artifact path as the run saw it; a copy must show its own sets, not the original's
    results, out, _ = smoke
    before = sorted(link for link in _parsed(out / "index.html").links if link.startswith("images/"))
    copied = tmp_path / "elsewhere" / "results"
    shutil.copytree(results, copied)
    monkeypatch.chdir(tmp_path)
    made = _cli("report", "--results", str(copied), "--out", "page", "--html-only")
    assert made.code == 0 and "outside the results directory" not in made.err, made.err
    after = sorted(link for link in _parsed(tmp_path / "page" / "index.html").links if link.startswith("images/"))
    assert len(before) == 4 * 5 and after == before  # the LGM set and four selected sets, 4 classes each


def _many_cells(root: Path, methods: int = 100, backbones: int = 5, seeds: int = 3) -> pd.DataFrame:
    """``methods x backbones`` fabricated same-model cells (two of them failed) as the cell files of suite
    ``many`` under ``root``; returns their rows."""
    recs = []
    for m in range(methods):
        for b in range(backbones):
            failed = (m, b) in ((3, 1), (57, 4))
            recs += [_row(suite="many", method=f"m{m:03d}", distill_backbone=f"bb{b}", eval_backbone=f"bb{b}",
                          probe_seed=s, top1=(m * 7 + b * 13) % 97 + s * 0.5, config_hash=f"{m:04d}{b:04d}",
                          method_config=json.dumps({"method": f"m{m:03d}", "lr": 0.01}),
                          probe_config='{"protocol": "linear"}',
                          status="error" if failed else "ok", cell_id=f"m{m:03d}_b{b}",
                          error="RuntimeError: CUDA out of memory" if failed else "") for s in range(seeds)]
    table = to_table(recs)  # one conversion, then a slice per cell file (write_rows converts per cell)
    folder = root / "cells" / "many"
    folder.mkdir(parents=True)
    for i in range(0, len(recs), seeds):
        pq.write_table(table.slice(i, seeds), folder / f"{recs[i]['cell_id']}.parquet")
    return pd.DataFrame(recs)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """The page of a results directory with 500 cells (the page step alone: a bar chart of 100 methods
    is the figures' cost, not the page's)."""
    base = tmp_path_factory.mktemp("many")
    frame = _many_cells(base / "results")
    report = tabulate(gather(base / "results"))
    out = base / "out"
    out.mkdir()
    paths = write_html(report, out, [], None, warn=lambda message: None, points=True)
    return out, frame, paths


def test_page_of_500_cells_renders_every_row_and_failed_cell(many):
    out, frame, paths = many
    assert frame["cell_id"].nunique() == 500
    page = out / "index.html"
    assert page in paths and page.stat().st_size < 2 * MB
    parsed = _parsed(page, "t-many_toy_set_ipc1_linear")
    assert len(parsed.rows) == 100
    ok = frame[frame["status"] == "ok"]
    mean = ok[(ok["method"] == "m010") & (ok["eval_backbone"] == "bb2")]["top1"].mean()
    (m010,) = [r for r in parsed.rows if r[0] == "m010"]
    assert m010[3].startswith(f"{mean:.2f} ± ")
    (m003,) = [r for r in parsed.rows if r[0] == "m003"]
    assert m003[2] == "—"  # the failed cell enters no mean
    text = page.read_text()
    assert text.count("RuntimeError: CUDA out of memory") == 2 * 2  # in its row's details and under failed cells


# ------------------------------------------------------------------------ the page, in a browser


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("selenium is not installed: pip install 'lgm-bench[test]'")
    binary, driver_path = _chromium(), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no headless Chromium here: install it with `apt-get install chromium chromium-driver` "
                    f"(found browser: {binary}, driver: {driver_path})")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never look for a driver online
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},900", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def _open(driver, page: Path) -> tuple[list[dict], list[str]]:
    """Open ``page``; returns the browser console's messages and the URLs of every request it made."""
    driver.get_log("browser")  # forget what earlier pages said and asked for
    driver.get_log("performance")
    driver.get(page.resolve().as_uri())
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return driver.get_log("browser"), requests


def _images(driver) -> list[list]:
    return driver.execute_script(
        "return Array.from(document.images).filter(i => i.getAttribute('src'))"
        ".map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")


def _column(driver, table_id: str, col: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).tBodies)"
        ".map(b => b.rows[0].cells[arguments[1]].textContent.trim());", table_id, col)


def _sort_by(driver, table_id: str, col: int) -> None:
    driver.execute_script(
        "document.getElementById(arguments[0]).querySelector('thead tr:last-child th[data-col=\"' + arguments[1]"
        " + '\"] button').click();", table_id, col)


def screenshot(driver, path: Path, height: int | None = None) -> Path:
    """A screenshot of the open page at WIDTH CSS pixels, the whole page tall (or ``height``)."""
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": height or full,
                                                                   "deviceScaleFactor": 1, "mobile": False})
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    import base64

    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_in_a_browser_the_page_loads_sorts_and_opens(smoke, browser, tmp_path, figures):
    from selenium.webdriver.common.by import By

    _, out, _ = smoke
    console, requests = _open(browser, out / "index.html")
    errors = [m for m in console if m["level"] == "SEVERE"]
    assert errors == []
    assert requests and [u for u in requests if not u.startswith(("file://", "data:"))] == []

    images = _images(browser)
    not_loaded = [src for src, complete, width in images if not (complete and width > 0)]
    assert len(images) >= 5 * 4 + 1 and not_loaded == []  # the galleries and the bar chart

    expected = _expected(out)
    names = _column(browser, TABLE, 0)
    assert sorted(names) == sorted(expected) and len(names) == len(expected)
    assert dict(zip(names, _column(browser, TABLE, 1), strict=True)) == expected

    def mean(text: str) -> float:
        return float(text.split(" ")[0])

    _sort_by(browser, TABLE, 1)  # numbers: highest first
    values = [mean(v) for v in _column(browser, TABLE, 1)]
    assert values == sorted(values, reverse=True) and _column(browser, TABLE, 0) != names
    _sort_by(browser, TABLE, 1)  # again: lowest first
    values = [mean(v) for v in _column(browser, TABLE, 1)]
    assert values == sorted(values)
    _sort_by(browser, TABLE, 0)  # text: by name
    assert _column(browser, TABLE, 0) == sorted(names, key=str.casefold)  # as a reader sorts names

    toggle = browser.find_element(By.CSS_SELECTOR, f"#{TABLE} tbody .details-toggle")
    details = browser.find_element(By.ID, toggle.get_attribute("aria-controls"))
    assert not details.is_displayed()
    toggle.click()
    assert details.is_displayed() and toggle.get_attribute("aria-expanded") == "true"
    assert "config hash" in details.text and ".parquet" in details.text and "method settings" in details.text

    tile = browser.find_element(By.CSS_SELECTOR, "table.gallery-grid img.zoom")
    tile.click()
    box = browser.find_element(By.ID, "lightbox")
    assert box.is_displayed()
    large = box.find_element(By.TAG_NAME, "img")
    assert large.size["width"] > 2 * tile.size["width"]
    assert box.text.startswith(tile.get_attribute("alt").split(",")[0] + " · ")  # the class name first
    box.click()
    assert not box.is_displayed()

    shot = screenshot(browser, tmp_path / "smoke_page.png")
    width, height = _png_size(shot)
    assert width == WIDTH and height > 900
    figures(f"smoke page in Chromium: {len(errors)} console errors, {len(images) - len(not_loaded)} of {len(images)} "
            f"images loaded, {len(requests)} requests all file:// or data:, {len(names)} rows equal to "
            f"aggregated.csv, sorted 3 ways, details and lightbox opened, screenshot {width} x {height} px")

    browser.execute_script("console.error('the check sees console errors')")
    assert any("the check sees console errors" in m["message"] for m in browser.get_log("browser"))


def test_in_a_browser_500_cells_render_and_sort(many, browser, figures):
    out, frame, _ = many
    table = "t-many_toy_set_ipc1_linear"
    console, _ = _open(browser, out / "index.html")
    assert [m for m in console if m["level"] == "SEVERE"] == []
    assert len(_column(browser, table, 0)) == 100
    _sort_by(browser, table, 2)  # bb1: descending, the failed cell (m003) last
    shown = _column(browser, table, 2)
    values = [float(v.split(" ")[0]) for v in shown[:-1]]
    assert values == sorted(values, reverse=True) and shown[-1] == "—"
    assert _column(browser, table, 0)[-1] == "m003"
    ok = frame[(frame["status"] == "ok") & (frame["eval_backbone"] == "bb1")]
    best = ok.groupby("method")["top1"].mean().idxmax()
    assert _column(browser, table, 0)[0] == display_method(best)
    figures(f"500-cell page in Chromium: {len(shown)} rows, sorted by bb1 with the failed cell last")


def test_published_numbers_beside_ours_with_the_difference_coloured(tmp_path):
    root = tmp_path / "results"
    cell = {"suite": "paperlike", "dataset": "imagenet100", "distill_backbone": "clip_vitb16",
            "eval_backbone": "clip_vitb16", "protocol": "paper"}
    rows = [_row(**cell, method="lgm", probe_seed=s, top1=v, cell_id="lgm") for s, v in enumerate((84.5, 85.5))]
    rows += [_row(**cell, method="random_real", probe_seed=0, top1=50.0, cell_id="rand")]  # paper: 56.6
    rows[-1]["distill_backbone"] = ""
    for name in ("lgm", "rand"):
        write_cell(root / "cells" / "paperlike" / f"{name}.parquet", [r for r in rows if r["cell_id"] == name])
    out = tmp_path / "out"
    out.mkdir()
    write_html(tabulate(gather(root)), out, [], None, warn=lambda message: None, points=False)
    parsed = _parsed(out / "index.html", "t-paperlike_imagenet100_ipc1_paper")
    assert {r[0]: r[1:] for r in parsed.rows} == {"LGM": ["85.00 ± 0.71", "84.9", "+0.10"],
                                                  "Random": ["50.00", "56.6", "-6.60"]}
    text = (out / "index.html").read_text()
    assert re.search(r'class="num delta pos1"[^>]*>\+0\.10<', text)
    assert re.search(r'class="num delta neg3"[^>]*>-6\.60<', text)
    csv = pd.read_csv(out / "paperlike_imagenet100_ipc1_paper.csv")
    assert csv.set_index("method")["delta"].round(2).to_dict() == {"lgm": 0.1, "random_real": -6.6}


@pytest.mark.parametrize(("d", "css"), [(None, ""), (0.0, "delta pos1"), (0.99, "delta pos1"), (-1.0, "delta neg2"),
                                        (2.5, "delta pos2"), (3.0, "delta pos3"), (-12.0, "delta neg3")])
def test_difference_colour_steps(d, css):
    assert delta_class(d) == css


def _readme_default_table() -> dict[str, list[str]]:
    """The README's same-model table of the embedded default for this machine's CPU: method key -> its two
    cells, unbolded. The README gives the Intel Xeon's table and the rows an AMD EPYC reads otherwise."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text[text.index("## The embedded default"):text.index("**What LGM runs here")]
    tables: dict[str, dict[str, list[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("Method"):
            rows = tables.setdefault("AMD" if "AMD" in cells[0] else "Intel", {})
        elif len(cells) == 3 and "±" in line:
            rows[cells[0]] = cells[1:]
    vendor = next((v for v in tables if v.lower() in _cpu_vendor().lower()), None)
    if vendor is None:
        pytest.skip(f"the README gives the embedded default's digits for {sorted(tables)} CPUs, not for "
                    f"{_cpu_vendor()!r}: its LGM cells may differ in the last digits here")
    return {**tables["Intel"], **tables[vendor]}


def _cpu_vendor() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                return {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor)
    return "unknown"


@pytest.mark.slow
def test_page_of_the_embedded_default(tmp_path):
    """The embedded default's page: its 32 cells with the README's numbers, both image grids and the
    transfer heatmap. ``LGM_BENCH_DEFAULT_RESULTS=DIR`` reuses results of `python -m benchmark run`."""
    results = Path(os.environ.get("LGM_BENCH_DEFAULT_RESULTS") or tmp_path / "results")
    if not (results / "cells" / "default").is_dir():
        assert _cli("run", "--results", str(results), "--no-progress").code == 0
    out = tmp_path / "reports"
    made = _cli("report", "--results", str(results), "--out", str(out), "--html-only")
    assert made.code == 0, made.err
    page = out / "index.html"
    text = page.read_text()
    assert re.search(r'<th scope="row">default</th>\s*<td><span class="badge ok">32</span>', text)
    parsed = _parsed(page, "t-default_fashion_mnist_embedded_ipc1_fast")
    readme = _readme_default_table()
    assert len(readme) == 7
    assert {r[0]: r[1:] for r in parsed.rows} == {display_method(k): v for k, v in readme.items()}
    images = [link for link in parsed.links if link.startswith("images/")]
    lgm = [link for link in images if "_lgm-embedded_" in link]
    assert len(lgm) == 2 * 10  # two distilling backbones x ten classes
    for method in ("neighbors", "centroids", "kmeans", "herding"):
        assert len([link for link in images if f"_{method}_ipc1" in link]) == 2 * 10, method
    assert "default_fashion_mnist_embedded_ipc1_fast_lgm-embedded_transfer_heatmap.png" in parsed.links
    assert "Selected real images" in text and "Ankle boot" in text
    assert page.stat().st_size < 2 * MB
