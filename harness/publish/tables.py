"""The leaderboard as tables: CSV for spreadsheets, Markdown for READMEs and announcements.

The layout is the paper's (BENCHMARK.md section 5): one row per submission, one column per test set
(five CT, then two MR), then the CT, MR and All means; Dice and NSD in percent with two decimals.
A cell without a number says why: "–" for a test set the submission did not run (or a group mean
that needs it), a trailing "*" for a test set with fewer cases than its contract, a trailing "†"
for a score that includes failed cases (scored 0). Each metric's table is in that metric's order.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from harness.results import RANKED_METRICS

#: Short column titles of the benchmark's test sets, as in the paper's tables.
SHORT_TITLES = {"flare22": "FLARE22", "amos_ct": "AMOS CT", "word": "WORD", "totalseg_ct": "TotalSeg CT",
                "btcv": "BTCV", "amos_mr": "AMOS MR", "totalseg_mr": "TotalSeg MR"}
GROUP_TITLES = {"ct": "CT mean", "mr": "MR mean", "all": "All mean"}
METRIC_TITLES = {"dice": "Dice", "nsd": "NSD"}
MISSING = "–"
INCOMPLETE_MARK = "*"
FAILED_MARK = "†"
SCHEME_TITLES = {"mean": "All mean", "rank-then-aggregate": "rank-then-aggregate", "test-based": "test-based"}


@dataclass(frozen=True)
class Column:
    """One score column: a test set (kind "test_set") or a group mean (kind "group")."""

    key: str
    title: str
    kind: str

    def cell(self, entry: dict, metric: str) -> dict:
        """The submission's {score, ci_low, ci_high} here, plus its status (complete/incomplete/missing)."""
        if self.kind == "test_set":
            values = entry["test_sets"][self.key]
            return {**values[metric], "status": values["status"], "n_failed": values["n_failed"]}
        values = entry["groups"][self.key]
        return {**values[metric], "status": "complete" if values[metric]["score"] is not None else "missing",
                "n_failed": sum(entry["test_sets"][k]["n_failed"] for k in values["test_sets"])}


def columns(document: dict) -> list[Column]:
    """Test sets in the document's order (CT first), then the CT, MR and All means."""
    sets = [Column(t["key"], SHORT_TITLES.get(t["key"], t["key"]), "test_set") for t in document["test_sets"]]
    groups = [Column(g, GROUP_TITLES[g], "group") for g in ("ct", "mr", "all") if document["groups"][g]]
    return sets + groups


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def display(cell: dict) -> str:
    """A table cell for people: the percent score, "–" if there is none, "*" if the test set is partial."""
    if cell["score"] is None:
        return MISSING
    return (percent(cell["score"]) + (INCOMPLETE_MARK if cell["status"] == "incomplete" else "")
            + (FAILED_MARK if cell.get("n_failed") else ""))


def display_interval(cell: dict) -> str:
    if cell["ci_low"] is None or cell["ci_high"] is None:
        return MISSING
    return f"{percent(cell['ci_low'])}–{percent(cell['ci_high'])}"


def _rank(value: int | None) -> str:
    return "" if value is None else str(value)


def in_metric_order(document: dict, metric: str) -> list[dict]:
    """The submissions as `metric`'s table shows them: the official order for the ranking metric,
    else by that metric's All-mean rank (unranked last), so the NSD table is ranked by NSD."""
    if metric == document["ranking_metric"]:
        return list(document["submissions"])
    position = {e["name"]: i for i, e in enumerate(document["submissions"])}
    return sorted(document["submissions"], key=lambda e: (e["ranks_by_metric"][metric]["mean_score"] is None,
                                                          e["ranks_by_metric"][metric]["mean_score"] or 0,
                                                          position[e["name"]]))


def score_csv(document: dict, *, metric: str) -> str:
    """One metric's table as CSV, in that metric's order and with its ranks: plain numbers (percent),
    empty where undefined, reasons in `notes`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    cols = columns(document)
    writer.writerow(["rank_mean_score", "rank_then_aggregate", "mean_rank", "submission",
                     *[c.key if c.kind == "test_set" else f"{c.key}_mean" for c in cols], "notes"])
    for entry in in_metric_order(document, metric):
        ranks = entry["ranks_by_metric"][metric]
        writer.writerow([_rank(ranks["mean_score"]), _rank(ranks["rank_then_aggregate"]),
                         "" if ranks["mean_rank"] is None else f"{ranks['mean_rank']:.2f}", entry["name"],
                         *[percent(c.cell(entry, metric)["score"]) for c in cols], "; ".join(entry["notes"])])
    return buffer.getvalue()


def interval_csv(document: dict) -> str:
    """Long format: one row per submission, column and metric, with the bootstrap interval."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["submission", "column", "kind", "metric", "status", "score", "ci_low", "ci_high"])
    for entry in document["submissions"]:
        for column in columns(document):
            for metric in RANKED_METRICS:
                cell = column.cell(entry, metric)
                writer.writerow([entry["name"], column.key, column.kind, metric, cell["status"], percent(cell["score"]),
                                 percent(cell["ci_low"]), percent(cell["ci_high"])])
    return buffer.getvalue()


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(header: list[str], rows: list[list[str]], *, numeric_from: int) -> list[str]:
    align = [":---" if i < numeric_from else "---:" for i in range(len(header))]
    return [_md_row(header), "|" + "|".join(align) + "|", *[_md_row(r) for r in rows]]


def ranking_rows(document: dict) -> tuple[list[str], list[list[str]]]:
    """The ranking table: official rank and its bootstrap interval first, the other schemes after."""
    metric = document["ranking_metric"]
    title = METRIC_TITLES[metric]
    header = ["Rank", "95% rank interval", "Submission", f"All mean {title} (%)", "95% CI", "Mean-score rank",
              "Rank-then-aggregate (mean rank)", "Test-based (wins)", "Note"]
    wins = document["ranking"]["tests"]["wins"]
    rows = []
    for entry in document["submissions"]:
        cell = {**entry["groups"]["all"][metric], "status": "complete"}
        ranks = entry["ranks"]
        interval = ranks.get("rank_interval")
        rows.append([_rank(ranks["official"]) or MISSING,
                     (f"{interval[0]}–{interval[1]}" if interval else MISSING),
                     entry["name"], display(cell), display_interval(cell),
                     _rank(ranks["mean_score"]) or MISSING,
                     (MISSING if ranks["mean_rank"] is None
                      else f"{ranks['rank_then_aggregate']} ({ranks['mean_rank']:.2f})"),
                     MISSING if ranks["test_based"] is None else f"{ranks['test_based']} ({wins[entry['name']]})",
                     ranks.get("unranked_reason") or ""])
    return header, rows


def official_statement(document: dict) -> str:
    """One sentence: which ranking is official, by which metric, and what the others are for."""
    ranking = document["ranking"]
    official = ranking["official"]
    others = [SCHEME_TITLES[s] for s in ranking["schemes"] if s != official]
    boot = ranking["bootstrap"]
    tau = (f" Kendall's tau between {boot['resamples']} paired bootstrap rankings and the published one: median "
           f"{boot['kendall_tau']['median']:.2f} (95% {boot['kendall_tau']['q025']:.2f} to "
           f"{boot['kendall_tau']['q975']:.2f})." if boot and boot["kendall_tau"]["median"] is not None else "")
    return (f"Official ranking: {SCHEME_TITLES[official]} ({official}) of "
            f"{METRIC_TITLES[document['ranking_metric']]}; {' and '.join(others)} are shown as robustness "
            f"checks.{tau}")


def markdown(document: dict) -> str:
    """The whole leaderboard as Markdown: ranking, Dice and NSD tables, intervals, and notes."""
    metric_title = METRIC_TITLES[document["ranking_metric"]]
    boot = document["bootstrap"]
    lines = [f"# A-Eval leaderboard: benchmark `{document['benchmark']}`", "",
             f"Empty-organ policy `{document['empty_policy']}`; ranked by {metric_title}. "
             + official_statement(document) + " "
             + (f"95% paired bootstrap intervals over cases ({boot['resamples']} resamples, seed {boot['seed']})."
                if boot["resamples"] else "No bootstrap intervals (--bootstrap 0)."),
             "", "## Ranking", ""]
    header, rows = ranking_rows(document)
    lines += _md_table(header, rows, numeric_from=3)
    cols = columns(document)
    for metric in RANKED_METRICS:
        title = METRIC_TITLES[metric]
        lines += ["", f"## {title} (%)", ""]
        lines += _md_table(["Submission", *[c.title for c in cols]],
                           [[e["name"], *[display(c.cell(e, metric)) for c in cols]]
                            for e in in_metric_order(document, metric)],
                           numeric_from=1)
    if boot["resamples"]:
        for metric in RANKED_METRICS:
            lines += ["", f"## {METRIC_TITLES[metric]}: 95% confidence intervals (%)", ""]
            lines += _md_table(["Submission", *[c.title for c in cols]],
                               [[e["name"], *[display_interval(c.cell(e, metric)) for c in cols]]
                                for e in in_metric_order(document, metric)], numeric_from=1)
    notes = [(e["name"], note) for e in document["submissions"] for note in e["notes"]]
    lines += ["", f"{MISSING}: no score (test set not run, or a group mean that needs a missing or partial test set). "
                  f"{INCOMPLETE_MARK}: fewer cases than the test set's contract. "
                  f"{FAILED_MARK}: includes failed cases, scored 0."]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {name}: {note}" for name, note in notes]
    return "\n".join(lines) + "\n"
