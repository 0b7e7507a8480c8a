"""The HTML report: static checks, and a real headless Chromium loading it from file://.

The browser test skips (with the reason) only when no Chromium is installed and CI is not set;
under CI (CI=true) a missing browser fails it: the setup installs Debian's `chromium`.
"""

from __future__ import annotations

import os
import re

import pytest

from harness.jsonio import read_json
from harness.publish.tables import percent
from tests.publish.browser import Browser, find_chromium


@pytest.fixture(scope="module")
def chromium() -> str:
    executable = find_chromium()
    if executable is None:
        reason = "no Chromium found (apt-get install -y chromium, or set AEVAL_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a headless browser: {reason}")
        pytest.skip(reason)
    return executable


def test_page_is_self_contained(leaderboard_out):
    page = (leaderboard_out / "leaderboard.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    # namespaces (xmlns="http://www.w3.org/2000/svg") are names, not fetches; nothing else may point outside
    assert not re.search(r'(src|href)\s*=\s*"(?!data:|#)', page)
    assert "default-src 'none'" in page
    # CT-vs-MR, two box-plot figures, one heatmap figure per submission, two overview heatmaps,
    # blob plot, significance map and rank stability
    assert page.count("<svg") == 3 + 4 + 2 + 3
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "inlined SVGs must not share element ids"


def test_report_in_a_real_browser(leaderboard_out, chromium, tmp_path):
    document = read_json(leaderboard_out / "leaderboard.json")
    with Browser(chromium, user_data_dir=tmp_path / "profile") as browser:
        browser.open((leaderboard_out / "leaderboard.html").as_uri(), width=1280, height=900)
        title = browser.evaluate("document.title")
        tables = browser.evaluate("""
            Object.fromEntries([...document.querySelectorAll('table[data-metric]')].map(t => [t.dataset.metric,
              Object.fromEntries([...t.querySelectorAll('tbody tr')].map(r => [r.dataset.submission,
                Object.fromEntries([...r.querySelectorAll('td[data-column]')].map(
                  c => [c.dataset.column, c.dataset.value]))]))]))""")
        ranking = browser.evaluate("[...document.querySelectorAll('#table-ranking tbody tr')]"
                                   ".map(r => [...r.cells].map(c => (c.querySelector('.n') || c).textContent.trim()))")
        unranked = browser.evaluate("Object.fromEntries([...document.querySelectorAll('#table-ranking tbody tr')]"
                                    ".map(r => [r.dataset.submission, r.querySelector('.why')?.textContent ?? null]))")
        figures = browser.evaluate("""
            [...document.querySelectorAll('figure.chart')].map(f => {
              const svg = f.querySelector('svg, img'); const r = svg.getBoundingClientRect();
              return {kind: f.dataset.figure, tag: svg.tagName.toLowerCase(), width: r.width, height: r.height,
                      marks: svg.querySelectorAll('path, rect, image, use, text').length};
            })""")
        broken = browser.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
        shot = browser.screenshot(tmp_path / "leaderboard.png")
        urls = browser.requested_urls()

    assert title == "A-Eval leaderboard: synthetic"
    # every number of both score tables, as the leaderboard JSON has it
    for metric in ("dice", "nsd"):
        assert set(tables[metric]) == {e["name"] for e in document["submissions"]}
        for entry in document["submissions"]:
            row = tables[metric][entry["name"]]
            for key in entry["test_sets"]:
                assert row[key] == percent(entry["test_sets"][key][metric]["score"]), (metric, entry["name"], key)
            for group in ("ct", "mr", "all"):
                assert row[group] == percent(entry["groups"][group][metric]["score"])
    assert tables["dice"]["no-mr-run"]["amos_mr"] == "" and tables["dice"]["no-mr-run"]["all"] == ""
    assert [r[2] for r in ranking] == [e["name"] for e in document["submissions"]]
    assert ranking[0][0] == "1" and ranking[-1][:2] == ["–", "–"]
    # why a row is unranked, inline under its name; ranked rows carry no such note
    assert unranked["no-mr-run"] == "unranked: missing amos_mr, totalseg_mr"
    assert {name for name, why in unranked.items() if why} == {"no-mr-run"}
    # figures: present, laid out at a readable size, with drawn content
    kinds = [f["kind"] for f in figures]
    assert kinds.count("heatmap") == len(document["submissions"])
    assert {"ct-vs-mr", "boxplot-dice", "boxplot-nsd"} <= set(kinds)
    for figure in figures:
        assert figure["tag"] in ("svg", "img")
        assert figure["width"] > 400 and figure["height"] > 150, figure
        # ranking figures of three ranked submissions draw less than a heatmap of seven test sets
        assert figure["marks"] > (12 if figure["kind"] in ("blob", "significance", "rank-stability") else 40), figure
    assert broken == 0
    # file:// only: the page and the PNG rasters matplotlib embeds as data: URLs, nothing else
    assert {u.split(":", 1)[0] for u in urls} <= {"file", "data"}, urls
    assert urls[0] == (leaderboard_out / "leaderboard.html").as_uri()
    _assert_screenshot_has_content(shot)


def _assert_screenshot_has_content(path) -> None:
    """A full-page screenshot that is long and colorful (figures rendered), not a blank page."""
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    height, width, _ = image.shape
    assert width >= 1280 and height > 3000, image.shape
    saturation = image.max(axis=2) - image.min(axis=2)
    colorful_rows = (saturation > 60).sum(axis=1) > 50
    assert colorful_rows.sum() > 800  # heatmaps, bars and boxes; tables alone are grey


def test_thirty_submissions_still_read_in_a_real_browser(tmp_path_factory, chromium, tmp_path):
    """Heatmaps, ranking figures and tables of 30 submissions: every name label has its own line."""
    from tests.publish.conftest import make_results, run_cli

    root = tmp_path_factory.mktemp("thirty")
    files = [str(make_results(root / f"s{i:02d}" / "results.json", name=f"team-{i:02d}-a-rather-long-model-name",
                              seed=100 + i, quality={"CT": 0.70 + 0.008 * i, "MR": 0.60 + 0.008 * i}))
             for i in range(30)]
    out = tmp_path / "board"
    assert run_cli("leaderboard", *files, "--out", str(out), "--bootstrap", "1000", "-q") == 0
    with Browser(chromium, user_data_dir=tmp_path / "profile") as browser:
        browser.open((out / "leaderboard.html").as_uri(), width=1280, height=900)
        layout = browser.evaluate("""
            Object.fromEntries([...document.querySelectorAll('figure.chart')].filter(
              f => ['overview-dice', 'blob', 'significance', 'rank-stability'].includes(f.dataset.figure)).map(f => {
                const svg = f.querySelector('svg'); const box = svg.getBoundingClientRect();
                const labels = [...svg.querySelectorAll('text')].filter(t => t.textContent.startsWith('team-'))
                  .map(t => { const r = t.getBoundingClientRect(); return [r.top, r.bottom, r.left, r.right]; });
                return [f.dataset.figure, {width: box.width, height: box.height, labels}];
              }))""")
        rows = browser.evaluate("document.querySelectorAll('#table-ranking tbody tr').length")
    assert rows == 30
    overview = layout["overview-dice"]
    assert len(overview["labels"]) == 30 and overview["height"] > 30 * 14
    tops = sorted(overview["labels"])
    for above, below in zip(tops, tops[1:]):  # y-axis names: one per row, none overlapping
        assert below[0] >= above[1] - 0.5, (above, below)
    assert min(bottom - top for top, bottom, *_ in overview["labels"]) >= 7  # legible text, not shrunk to fit
    for kind in ("blob", "significance", "rank-stability"):
        assert layout[kind]["width"] > 400 and layout[kind]["labels"], kind
