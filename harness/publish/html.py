"""The leaderboard as one static, self-contained HTML page.

One file an organizer can attach, upload or open from disk: inline CSS, figures as inline SVG, no
script, no font or stylesheet from anywhere (a Content-Security-Policy forbids every fetch, so a
page that renders offline renders the same on a website). Tables carry the numbers as text and
as `data-value` attributes, so the page is checkable by machines and readable by people.
"""

from __future__ import annotations

from html import escape

from harness.publish import figures
from harness.publish.tables import (INCOMPLETE_MARK, METRIC_TITLES, MISSING, Column, columns, display,
                                    display_interval, percent, ranking_rows)
from harness.results import RANKED_METRICS

_CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --band: #f6f8fa; --accent: #0b6e99; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: var(--ink); }
main { max-width: 1400px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p.meta, p.note, figcaption, .legend { color: var(--muted); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 7px; text-align: right; white-space: nowrap; }
th { background: var(--band); font-weight: 600; }
th.name, td.name { text-align: left; white-space: normal; min-width: 9em; max-width: 15em; overflow-wrap: break-word; }
td.group, th.group { background: #eef5f9; }
tr.first td { font-weight: 600; }
td .ci { display: block; font-size: 11px; color: var(--muted); font-weight: normal; }
td.missing { color: var(--muted); }
figure { margin: 12px 0 24px; }
figure svg { max-width: 100%; height: auto; display: block; }
ul.notes li { margin: 2px 0; }
"""


def _name(name: str) -> str:
    """A submission name that may wrap after '/' and ':' (image references are long)."""
    return escape(name).replace("/", "/<wbr>").replace(":", ":<wbr>")


def _cell(column: Column, entry: dict, metric: str, *, with_interval: bool) -> str:
    cell = column.cell(entry, metric)
    classes = ["group"] if column.kind == "group" else []
    if cell["score"] is None:
        classes.append("missing")
        return f'<td class="{" ".join(classes)}" data-column="{escape(column.key)}" data-value="">{MISSING}</td>'
    interval = ""
    if with_interval and cell["ci_low"] is not None:
        interval = f'<span class="ci">{escape(display_interval(cell))}</span>'
    return (f'<td class="{" ".join(classes)}" data-column="{escape(column.key)}" data-value="{percent(cell["score"])}"'
            f' data-status="{cell["status"]}"><span class="v">{escape(display(cell))}</span>{interval}</td>')


def score_table(document: dict, *, metric: str) -> str:
    cols = columns(document)
    with_interval = document["bootstrap"]["resamples"] > 0
    head = "".join(f'<th class="{"group" if c.kind == "group" else ""}">{escape(c.title)}</th>' for c in cols)
    rows = []
    for i, entry in enumerate(document["submissions"]):
        cells = "".join(_cell(c, entry, metric, with_interval=with_interval) for c in cols)
        rows.append(f'<tr class="{"first" if i == 0 else ""}" data-submission="{escape(entry["name"])}">'
                    f'<td class="name">{_name(entry["name"])}</td>{cells}</tr>')
    return (f'<div class="table-wrap"><table id="table-{metric}" data-metric="{metric}"><thead><tr>'
            f'<th class="name">Submission</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def ranking_table(document: dict) -> str:
    header, rows = ranking_rows(document)
    head = "".join(f'<th class="{"name" if i == 2 else ""}">{escape(h)}</th>' for i, h in enumerate(header))
    body = []
    for i, (row, entry) in enumerate(zip(rows, document["submissions"])):
        cells = "".join(f'<td class="{"name" if j == 2 else ""}">{_name(v) if j == 2 else escape(v)}</td>'
                        for j, v in enumerate(row))
        body.append(f'<tr class="{"first" if i == 0 else ""}" data-submission="{escape(entry["name"])}">{cells}</tr>')
    return (f'<div class="table-wrap"><table id="table-ranking"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _figure(svg: str, *, kind: str, caption: str) -> str:
    return f'<figure class="chart" data-figure="{kind}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def _figures(document: dict) -> list[str]:
    parts = ["<h2>CT versus MR</h2>",
             _figure(figures.ct_vs_mr(document, prefix="ctmr"), kind="ct-vs-mr",
                     caption="CT, MR and All means per submission; error bars are 95% bootstrap intervals. "
                             "n/a: a test set the group needs is missing or partial.")]
    parts.append("<h2>Per-case scores</h2>")
    for metric in RANKED_METRICS:
        parts.append(_figure(figures.case_boxplots(document, metric=metric, prefix=f"box-{metric}"),
                             kind=f"boxplot-{metric}",
                             caption=f"Case {METRIC_TITLES[metric]} (mean over organs) per test set: one box per "
                                     "submission (numbered as in the legend), one dot per case; failed cases are 0."))
    parts.append("<h2>Organs by test set</h2>")
    for i, entry in enumerate(document["submissions"]):
        parts.append(f"<h3>{escape(entry['name'])}</h3>")
        parts.append(_figure(figures.organ_heatmap(document, entry, prefix=f"heat{i}"), kind="heatmap",
                             caption=f"Organ means of {entry['name']} per test set (Dice and NSD, %); "
                                     "grey n/a: test set not run."))
    return parts


def report(document: dict) -> str:
    """The full page: summary line, ranking, Dice and NSD tables, figures, notes."""
    boot = document["bootstrap"]
    interval_text = (f"95% bootstrap intervals over cases ({boot['resamples']} resamples, seed {boot['seed']}) "
                     "under each score." if boot["resamples"] else "No bootstrap intervals.")
    title = f"A-Eval leaderboard: {document['benchmark']}"
    notes = [f"<li><strong>{escape(e['name'])}</strong>: {escape(n)}</li>"
             for e in document["submissions"] for n in e["notes"]]
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="meta">{len(document["submissions"])} submissions, {len(document["test_sets"])} test sets; '
            f'empty-organ policy <code>{escape(document["empty_policy"])}</code>; ranked by '
            f'{METRIC_TITLES[document["ranking_metric"]]}; generated {escape(document["created"])} by harness '
            f'{escape(document["harness_version"])}.</p>',
            "<h2>Ranking</h2>", ranking_table(document),
            '<p class="note">Rank: by All mean. Rank-then-aggregate: rank on every test set, then the mean of those '
            "ranks (lower is better). A submission missing a test set is unranked.</p>"]
    for metric in RANKED_METRICS:
        body += [f"<h2>{METRIC_TITLES[metric]} (%)</h2>", score_table(document, metric=metric)]
    body.append(f'<p class="legend">{escape(interval_text)} {MISSING}: no score (test set not run, or a group '
                f"mean that needs a missing or partial test set). {INCOMPLETE_MARK}: fewer cases than the test "
                "set's contract.</p>")
    body += _figures(document)
    if notes:
        body += ["<h2>Notes</h2>", f'<ul class="notes">{"".join(notes)}</ul>']
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")
