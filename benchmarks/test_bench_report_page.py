"""How long the report's web page takes to write (``benchmark.report.build.write_html``: the gallery
images, the header's status counts, the tables with each row's cells, the Jinja render) for a results
directory of 500 fabricated cells; reading and tabulating the rows happen outside the timed part.

    pytest benchmarks/test_bench_report_page.py --benchmark-only
"""

from __future__ import annotations

import pytest

from benchmark.report.build import write_html
from benchmark.report.gather import gather
from benchmark.report.sections import tabulate
from tests.test_report_html import _many_cells


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("page_bench") / "results"
    _many_cells(root)
    return tabulate(gather(root))


def test_page_of_500_cells(benchmark, many, tmp_path):
    page = benchmark.pedantic(write_html, args=(many, tmp_path, [], None), kwargs={"warn": print, "points": True},
                              rounds=3, warmup_rounds=1)
    size = max(p.stat().st_size for p in page if p.name == "index.html")
    benchmark.extra_info["page_bytes"] = size
