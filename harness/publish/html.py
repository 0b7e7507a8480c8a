"""The leaderboard as one static, self-contained HTML page.

One file an organizer can attach, upload or open from disk: inline CSS, figures as inline SVG, no
script, no font or stylesheet from anywhere (a Content-Security-Policy forbids every fetch, so a
page that renders offline renders the same on a website). Tables carry the numbers as text and
as `data-value` attributes, so the page is checkable by machines and readable by people.
"""

from __future__ import annotations

from html import escape

from harness.publish import figures
from harness.publish.tables import (FAILED_MARK, INCOMPLETE_MARK, METRIC_TITLES, MISSING, SHORT_TITLES, Column,
                                    columns, display, display_interval, in_metric_order, official_statement, percent,
                                    ranking_rows)
from harness.results import RANKED_METRICS
from harness.taxonomy import load_taxonomy

#: What the two ranked metrics are, for readers of the page (tolerances come from the taxonomy).
METRIC_DEFINITIONS = {
    "dice": "Dice = 2|P∩G| / (|P|+|G|) per case and organ, on the ground truth's own grid.",
    "nsd": "NSD (normalized surface Dice): the share of both boundaries' surface area lying within the organ's "
           "tolerance τ of the other boundary, in physical units (surface elements weighted by area).",
}

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
td.failed .v { text-decoration: underline dotted #c44e52; }
td .why { display: block; font-size: 11px; color: #9a3412; white-space: normal; }
details > summary { cursor: pointer; color: var(--accent); margin: 8px 0; }
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
    if cell.get("n_failed"):
        classes.append("failed")
    title = f' title="includes {cell["n_failed"]} failed case(s), scored 0"' if cell.get("n_failed") else ""
    return (f'<td class="{" ".join(classes)}" data-column="{escape(column.key)}" data-value="{percent(cell["score"])}"'
            f' data-status="{cell["status"]}" data-failed="{cell.get("n_failed", 0)}"{title}>'
            f'<span class="v">{escape(display(cell))}</span>{interval}</td>')


def score_table(document: dict, *, metric: str) -> str:
    cols = columns(document)
    with_interval = document["bootstrap"]["resamples"] > 0
    head = "".join(f'<th class="{"group" if c.kind == "group" else ""}">{escape(c.title)}</th>' for c in cols)
    rows = []
    for entry in in_metric_order(document, metric):
        cells = "".join(_cell(c, entry, metric, with_interval=with_interval) for c in cols)
        first = entry["ranks_by_metric"][metric]["mean_score"] == 1 if metric != document["ranking_metric"] \
            else entry["ranks"]["official"] == 1
        rows.append(f'<tr class="{"first" if first else ""}" data-submission="{escape(entry["name"])}">'
                    f'<td class="name">{_name(entry["name"])}</td>{cells}</tr>')
    return (f'<div class="table-wrap"><table id="table-{metric}" data-metric="{metric}"><thead><tr>'
            f'<th class="name">Submission</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def ranking_table(document: dict) -> str:
    header, rows = ranking_rows(document)
    header = header[:-1]  # the note (why a row is unranked) goes under the name, inline
    head = "".join(f'<th class="{"name" if i == 2 else ""}">{escape(h)}</th>' for i, h in enumerate(header))
    body = []
    for row, entry in zip(rows, document["submissions"]):
        reason = row[-1]
        why = f'<span class="why" data-unranked="true">{escape(reason)}</span>' if reason else ""
        cells = "".join(f'<td class="name"><span class="n">{_name(v)}</span>{why}</td>' if j == 2
                        else f"<td>{escape(v)}</td>" for j, v in enumerate(row[:-1]))
        first = entry["ranks"]["official"] == 1
        body.append(f'<tr class="{"first" if first else ""}" data-submission="{escape(entry["name"])}"'
                    f' data-rank="{entry["ranks"]["official"] or ""}">{cells}</tr>')
    return (f'<div class="table-wrap"><table id="table-ranking"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _figure(svg: str, *, kind: str, caption: str) -> str:
    return f'<figure class="chart" data-figure="{kind}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def _ranking_figures(document: dict) -> list[str]:
    """Blob plot, significance map and rank stability, for the ranked submissions only."""
    ranking = document["ranking"]
    if len(ranking["submissions"]) < 2:
        return ['<p class="note">Fewer than two ranked submissions: no ranking uncertainty to show.</p>']
    parts = []
    if ranking["bootstrap"]:
        boot = ranking["bootstrap"]
        parts.append(_figure(figures.blob_plot(document, prefix="blob"), kind="blob",
                             caption=f"Ranks of the {boot['scheme']} ranking over {boot['resamples']} paired "
                                     "bootstrap resamples of the cases: blob area = share of resamples with that "
                                     "rank; black dot and line = median rank and 95% rank interval; red x = "
                                     "published rank."))
    tests = ranking["tests"]
    dropped = f", {tests['n_cases_dropped']} left out as undefined" if tests["n_cases_dropped"] else ""
    parts.append(_figure(figures.significance_map(document, prefix="signif"), kind="significance",
                         caption=f"Significance map: blue where the row's submission is significantly better than "
                                 f"the column's ({tests['method']}; α = {ranking['alpha']}; {tests['n_cases']} paired "
                                 f"cases{dropped})."))
    parts.append(_figure(figures.rank_stability(document, prefix="stability"), kind="rank-stability",
                         caption="Rank of each submission under the three ranking schemes; crossing lines are "
                                 "places the choice of scheme decides."))
    return parts


def _figures(document: dict) -> list[str]:
    parts = ["<h2>Scores at a glance</h2>"]
    for metric in RANKED_METRICS:
        parts.append(_figure(figures.overview_heatmap(document, metric=metric, prefix=f"over-{metric}"),
                             kind=f"overview-{metric}",
                             caption=f"{METRIC_TITLES[metric]} (%) of every submission per test set and group, "
                                     "in the official order; grey n/a: no score."))
    parts += ["<h2>CT versus MR</h2>",
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


def _short_digest(value: str | None) -> str:
    if not value:
        return MISSING
    algorithm, _, digest = value.partition(":")
    return f"{algorithm}:{digest[:12]}" if digest else value[:19]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f} s"


def test_set_table(document: dict) -> str:
    """What each column was scored on: cases per test set and the case-list fingerprint."""
    rows = []
    for t in document["test_sets"]:
        counts = sorted({e["test_sets"][t["key"]]["n_cases"] for e in document["submissions"]
                         if e["test_sets"][t["key"]]["status"] != "missing"})
        fingerprint = (t.get("fingerprint") or {}).get("cases_sha256")
        title = SHORT_TITLES.get(t["key"], t["key"])
        rows.append(f'<tr data-test-set="{escape(t["key"])}"><td class="name">{escape(title)}</td>'
                    f'<td>{escape(t["modality"])}</td><td data-cases="{t["expected_case_count"]}">'
                    f'{t["expected_case_count"]}</td><td>{escape(", ".join(map(str, counts)) or MISSING)}</td>'
                    f'<td><code>{escape(fingerprint[:12]) if fingerprint else MISSING}</code></td></tr>')
    return ('<div class="table-wrap"><table id="table-test-sets"><thead><tr><th class="name">Test set</th>'
            '<th>Modality</th><th>Cases</th><th>Cases scored</th><th>Case list</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def submission_table(document: dict) -> str:
    """Provenance and cost of each submission: image, digest, harness version, time, memory, failures."""
    rows = []
    for entry in document["submissions"]:
        runtime = entry.get("runtime") or {}
        peak = runtime.get("peak_memory_bytes")
        failed = sum(s["n_failed"] for s in entry["test_sets"].values())
        rows.append(f'<tr data-submission="{escape(entry["name"])}"><td class="name">{_name(entry["name"])}</td>'
                    f'<td class="name">{_name(entry.get("image") or MISSING)}</td>'
                    f'<td data-digest="{escape(entry.get("image_id") or "")}"><code>'
                    f'{escape(_short_digest(entry.get("image_id")))}</code></td>'
                    f'<td>{escape(entry.get("harness_version") or MISSING)}</td>'
                    f'<td data-wall="{runtime.get("wall_s_total") or ""}">'
                    f'{escape(_duration(runtime.get("wall_s_total")))}</td>'
                    f'<td data-peak="{peak or ""}">{MISSING if peak is None else f"{peak / 1024**3:.2f} GiB"}</td>'
                    f'<td>{failed}</td></tr>')
    return ('<div class="table-wrap"><table id="table-submissions"><thead><tr><th class="name">Submission</th>'
            '<th class="name">Image</th><th>Image digest</th><th>Harness</th><th>Run time</th><th>Peak memory</th>'
            f'<th>Failed cases</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def metrics_section() -> str:
    """Metric definitions and the per-organ NSD tolerances, read from the benchmark taxonomy."""
    organs = load_taxonomy().organs
    head = "".join(f"<th>{escape(o.name.replace('_', ' '))}</th>" for o in organs)
    cells = "".join(f'<td data-organ="{escape(o.name)}">{o.nsd_tolerance_mm:g}</td>' for o in organs)
    definitions = "".join(f"<li><strong>{METRIC_TITLES[m]}</strong>: {escape(METRIC_DEFINITIONS[m])}</li>"
                          for m in RANKED_METRICS)
    return (f'<ul class="notes">{definitions}<li>A test set\'s score is the mean of its organ means over cases; '
            "CT, MR and All are means of the test-set scores.</li></ul>"
            '<div class="table-wrap"><table id="table-tolerances"><thead><tr>'
            '<th class="name">NSD tolerance τ (mm)</th>'
            f'{head}</tr></thead><tbody><tr><td class="name">τ</td>{cells}</tr></tbody></table></div>')


def report(document: dict) -> str:
    """The full page: summary line, ranking with its uncertainty, score tables, figures, provenance, notes."""
    boot = document["bootstrap"]
    interval_text = (f"95% paired bootstrap intervals over cases ({boot['resamples']} resamples, seed {boot['seed']}) "
                     "under each score." if boot["resamples"] else "No bootstrap intervals.")
    title = f"A-Eval leaderboard: {document['benchmark']}"
    notes = [f"<li><strong>{escape(e['name'])}</strong>: {escape(n)}</li>"
             for e in document["submissions"] for n in e["notes"]]
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="meta">{len(document["submissions"])} submissions, {len(document["test_sets"])} test sets '
            f'({sum(t["expected_case_count"] for t in document["test_sets"])} cases); '
            f'empty-organ policy <code>{escape(document["empty_policy"])}</code>; ranked by '
            f'{METRIC_TITLES[document["ranking_metric"]]}; generated {escape(document["created"])} by harness '
            f'{escape(document["harness_version"])}.</p>',
            "<h2>Ranking</h2>", f'<p class="official" id="official-ranking">{escape(official_statement(document))}</p>',
            ranking_table(document),
            '<p class="note">Rank: the official ranking; its 95% interval comes from the paired bootstrap. Mean-score '
            "rank: by All mean. Rank-then-aggregate: rank on every test set, then the mean of those ranks (lower is "
            "better). Test-based: rank by the number of submissions beaten significantly (in brackets). A "
            "submission missing a test set, or with a partial one, is unranked and enters no rank of the others.</p>"]
    body += _ranking_figures(document)
    for metric in RANKED_METRICS:
        body += [f"<h2>{METRIC_TITLES[metric]} (%)</h2>",
                 f'<p class="note">Ordered and ranked by {METRIC_TITLES[metric]}.</p>',
                 score_table(document, metric=metric)]
    body.append(f'<p class="legend">{escape(interval_text)} {MISSING}: no score (test set not run, or a group '
                f"mean that needs a missing or partial test set). {INCOMPLETE_MARK}: fewer cases than the test "
                f"set's contract. {FAILED_MARK}: includes failed cases, scored 0.</p>")
    body += ["<h2>Test sets</h2>", test_set_table(document), "<h2>Submissions</h2>", submission_table(document),
             "<h2>Metrics</h2>", metrics_section()]
    body += _figures(document)
    if notes:
        body += ["<h2>Notes</h2>", f'<ul class="notes">{"".join(notes)}</ul>']
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")
