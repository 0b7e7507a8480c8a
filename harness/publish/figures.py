"""Figures of the leaderboard report, as inline SVG strings.

Why these three: a reader wants to see at a glance (1) where each submission is weak (organ x
test-set heatmaps: a dark row is an organ it misses, a dark column a test set it does not
generalize to), (2) whether a mean hides a few disasters (per-case box plots per test set), and
(3) how far CT performance carries over to MR (CT-vs-MR bars with intervals), the benchmark's
central question.

Figures are drawn with matplotlib's object API (`Figure` on an explicit Agg canvas, never pyplot):
no global backend switch, no GUI, nothing that needs a display, safe to call from any process.
Axes are placed at fixed positions in inches rather than by a layout engine: measuring every
label to fit the layout costs more than drawing the figure, and the labels here are of known size.
SVG keeps the page one self-contained, zoomable file; text stays text (`svg.fonttype: none`), and
the hash salt and empty date make the output byte-identical between runs. Element ids are
prefixed per figure so that several SVGs inlined in one page never share an id.
"""

from __future__ import annotations

import io
import re

import matplotlib.colors
import matplotlib.patches
import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.publish.tables import GROUP_TITLES, METRIC_TITLES, SHORT_TITLES
from harness.results import RANKED_METRICS

_RC = {"svg.fonttype": "none", "svg.hashsalt": "a-eval", "font.size": 9, "axes.titlesize": 10,
       "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False}
_HEAT = colormaps["viridis"]
_MISSING_COLOR = "#d9d9d9"
_GROUP_COLORS = {"ct": "#4c72b0", "mr": "#dd8452", "all": "#8c8c8c"}
_PAGE_IN = 13.5  # width of the report's content column, in inches at the page's scale


def submission_colors(n: int) -> list[str]:
    """One color per submission, the same in every figure."""
    cmap = colormaps["tab10"]
    return [matplotlib.colors.to_hex(cmap(i % 10)) for i in range(n)]


def _grid(*, rows: int, cols: int, panel_in: tuple[float, float], gap_in: tuple[float, float],
          margins_in: tuple[float, float, float, float]) -> tuple[Figure, list[Axes]]:
    """A figure on its own Agg canvas with a rows x cols grid of axes at fixed positions.

    `panel_in` is (width, height) of one panel, `gap_in` (horizontal, vertical) space between
    panels, `margins_in` (left, right, bottom, top), all in inches.
    """
    left, right, bottom, top = margins_in
    width = left + right + cols * panel_in[0] + (cols - 1) * gap_in[0]
    height = bottom + top + rows * panel_in[1] + (rows - 1) * gap_in[1]
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = []
    for r in range(rows):
        for c in range(cols):
            x0 = left + c * (panel_in[0] + gap_in[0])
            y0 = height - top - (r + 1) * panel_in[1] - r * gap_in[1]
            axes.append(figure.add_axes((x0 / width, y0 / height, panel_in[0] / width, panel_in[1] / height)))
    return figure, axes


def to_svg(figure: Figure, *, prefix: str) -> str:
    """The figure as an `<svg>` element (no XML prolog), ids made unique with `prefix`."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    if ids:
        pattern = re.compile(r'(\bid="|url\(#|href="#)(' + "|".join(map(re.escape, sorted(ids, key=len, reverse=True)))
                             + r')(?=["\)])')
        text = pattern.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    return text


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def organ_heatmap(document: dict, entry: dict, *, prefix: str) -> str:
    """Organ x test-set means of one submission, Dice and NSD side by side, in percent."""
    organs = document["organs"]
    keys = [t["key"] for t in document["test_sets"]]
    cmap = _HEAT.with_extremes(bad=_MISSING_COLOR)
    with rc_context(_RC):
        fig, axes = _grid(rows=1, cols=len(RANKED_METRICS), panel_in=(0.55 * len(keys) + 0.2, 0.27 * len(organs)),
                          gap_in=(0.2, 0), margins_in=(1.45, 0.85, 0.85, 0.35))
        for ax, metric in zip(axes, RANKED_METRICS):
            values = np.full((len(organs), len(keys)), np.nan)
            for j, key in enumerate(keys):
                per_organ = entry["test_sets"][key]["organs"]
                for i, organ in enumerate(organs):
                    value = (per_organ.get(organ) or {}).get(metric)
                    if value is not None:
                        values[i, j] = 100 * value
            image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
            for i in range(len(organs)):
                for j in range(len(keys)):
                    v = values[i, j]
                    color = "#333333" if np.isnan(v) or v > 60 else "white"
                    ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.0f}", ha="center", va="center", fontsize=7,
                            color=color)
            ax.set_xticks(range(len(keys)), [SHORT_TITLES.get(k, k) for k in keys], rotation=40, ha="right")
            ax.set_yticks(range(len(organs)), [o.replace("_", " ") for o in organs] if ax is axes[0] else [])
            ax.set_title(f"{METRIC_TITLES[metric]} (%)")
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
        box = axes[-1].get_position()
        cax = fig.add_axes((box.x1 + 0.15 / fig.get_figwidth(), box.y0, 0.12 / fig.get_figwidth(), box.height))
        fig.colorbar(image, cax=cax, label="%")
        return to_svg(fig, prefix=prefix)


def case_boxplots(document: dict, *, metric: str, prefix: str) -> str:
    """Per-case scores (mean over organs) per test set, one box per submission, cases as dots."""
    keys = [t["key"] for t in document["test_sets"]]
    entries = document["submissions"]
    colors = submission_colors(len(entries))
    panel_width = max(2.2, 0.45 * len(entries) + 0.6)
    ncols = max(1, min(4, len(keys), int(_PAGE_IN // (panel_width + 0.25))))  # many submissions: fewer columns
    nrows = max(1, int(np.ceil(len(keys) / ncols)))
    legend_rows = int(np.ceil(len(entries) / 3))
    jitter = np.random.default_rng(0)
    with rc_context(_RC):
        fig, axes = _grid(rows=nrows, cols=ncols, panel_in=(panel_width, 2.1),
                          gap_in=(0.25, 0.5), margins_in=(0.7, 0.15, 0.5 + 0.22 * legend_rows, 0.3))
        for index, (ax, key) in enumerate(zip(axes, keys)):
            data, positions, used = [], [], []
            for i, entry in enumerate(entries):
                scores = [100 * c[metric] for c in entry["test_sets"][key]["cases"] if c[metric] is not None]
                if scores:
                    data.append(scores)
                    positions.append(i)
                    used.append(colors[i])
            if data:
                boxes = ax.boxplot(data, positions=positions, widths=0.6, patch_artist=True, showfliers=False,
                                   medianprops={"color": "black"})
                for patch, color in zip(boxes["boxes"], used):
                    patch.set_facecolor(color)
                    patch.set_alpha(0.45)
                for pos, scores, color in zip(positions, data, used):
                    x = pos + jitter.uniform(-0.18, 0.18, size=len(scores))
                    ax.scatter(x, scores, s=9, color=color, edgecolor="black", linewidth=0.3, zorder=3)
            else:
                ax.text(0.5, 0.5, "no cases", transform=ax.transAxes, ha="center", va="center", color="#777777")
            ax.set_title(SHORT_TITLES.get(key, key))
            ax.set_xticks(range(len(entries)), [str(i + 1) for i in range(len(entries))])
            ax.set_xlim(-0.7, len(entries) - 0.3)
            ax.set_ylim(-3, 103)
            ax.set_yticks([0, 25, 50, 75, 100], None if index % ncols == 0 else [])
            ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
            if index % ncols == 0:
                ax.set_ylabel(f"case {METRIC_TITLES[metric]} (%)")
        for ax in axes[len(keys):]:
            ax.set_visible(False)
        handles = [matplotlib.patches.Patch(color=c, alpha=0.6, label=f"{i + 1}: {_short(e['name'])}")
                   for i, (c, e) in enumerate(zip(colors, entries))]
        fig.legend(handles=handles, loc="lower center", ncols=min(3, len(entries)), frameon=False)
        return to_svg(fig, prefix=prefix)


def ct_vs_mr(document: dict, *, prefix: str) -> str:
    """CT, MR and All means per submission with their 95% intervals, Dice and NSD panels."""
    entries = document["submissions"]
    groups = [g for g in ("ct", "mr", "all") if document["groups"][g]]
    width = 0.8 / max(1, len(groups))
    panel_width = max(3.2, 0.85 * len(entries) + 0.6)
    stacked = 2 * panel_width + 1.2 > _PAGE_IN  # side by side only while both fit the page's width
    with rc_context(_RC):
        fig, axes = _grid(rows=len(RANKED_METRICS) if stacked else 1, cols=1 if stacked else len(RANKED_METRICS),
                          panel_in=(panel_width, 2.4), gap_in=(0.3, 1.2), margins_in=(0.7, 0.15, 1.1, 0.6))
        for ax, metric in zip(axes, RANKED_METRICS):
            for g_index, group in enumerate(groups):
                offset = (g_index - (len(groups) - 1) / 2) * width
                for i, entry in enumerate(entries):
                    cell = entry["groups"][group][metric]
                    x = i + offset
                    if cell["score"] is None:
                        ax.text(x, 2, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="#777777")
                        continue
                    score = 100 * cell["score"]
                    error = None
                    if cell["ci_low"] is not None and cell["ci_high"] is not None:
                        error = [[max(0.0, score - 100 * cell["ci_low"])], [max(0.0, 100 * cell["ci_high"] - score)]]
                    ax.bar(x, score, width=width * 0.92, color=_GROUP_COLORS[group], yerr=error, capsize=2.5,
                           error_kw={"elinewidth": 0.8})
            ax.set_xticks(range(len(entries)), [_short(e["name"], 18) for e in entries], rotation=25, ha="right")
            ax.set_xlim(-0.6, len(entries) - 0.4)
            ax.set_ylim(0, 105)
            ax.set_yticks([0, 25, 50, 75, 100], None if ax is axes[0] or stacked else [])
            ax.set_title(f"{METRIC_TITLES[metric]} (%)")
            ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
            ax.set_axisbelow(True)
        axes[0].set_ylabel("mean over test sets (%)")
        handles = [matplotlib.patches.Patch(color=_GROUP_COLORS[g], label=GROUP_TITLES[g]) for g in groups]
        fig.legend(handles=handles, loc="upper center", ncols=len(groups), frameon=False)
        return to_svg(fig, prefix=prefix)


def _ranked(document: dict) -> list[str]:
    """Ranked submissions in the official order (the order every ranking figure uses)."""
    ranked = set(document["ranking"]["submissions"])
    return [e["name"] for e in document["submissions"] if e["name"] in ranked]


def blob_plot(document: dict, *, prefix: str) -> str:
    """challengeR's blob plot: per submission, how often each rank came up in the paired bootstrap.

    A blob's area is the share of resamples giving that rank; the black dot is the median rank and
    the line the 95% rank interval. A submission whose blobs spread over many ranks owes its place
    to the draw of cases.
    """
    boot = document["ranking"]["bootstrap"]
    names = _ranked(document)
    n = len(names)
    official = {e["name"]: e["ranks"]["official"] for e in document["submissions"]}
    with rc_context(_RC):
        fig, (ax,) = _grid(rows=1, cols=1, panel_in=(max(4.6, 0.42 * n + 0.6), max(2.4, 0.3 * n + 0.6)),
                           gap_in=(0, 0), margins_in=(0.7, 0.2, 1.3, 0.3))
        for i, name in enumerate(names):
            counts = np.asarray(boot["rank_counts"][name], dtype=float)
            share = counts / max(1.0, counts.sum())
            ranks = np.nonzero(share)[0]
            ax.scatter(np.full(len(ranks), i), ranks + 1, s=220 * share[ranks], color="#4c72b0", alpha=0.55,
                       edgecolor="none", zorder=2)
            low, high = boot["rank_interval"][name]
            ax.plot([i, i], [low, high], color="black", linewidth=0.9, zorder=3)
            ax.scatter([i], [boot["median_rank"][name]], s=10, color="black", zorder=4)
            ax.scatter([i], [official[name]], s=26, marker="x", color="#c44e52", linewidth=1.0, zorder=5)
        ax.set_xticks(range(n), [_short(nm, 18) for nm in names], rotation=40, ha="right")
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylim(n + 0.7, 0.3)
        ax.set_yticks(range(1, n + 1) if n <= 15 else range(1, n + 1, max(1, n // 10)))
        ax.set_ylabel("rank in bootstrap resamples")
        ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
        ax.set_axisbelow(True)
        return to_svg(fig, prefix=prefix)


def significance_map(document: dict, *, prefix: str) -> str:
    """Pairwise significance: a filled cell where the row's submission beats the column's significantly
    (one-sided Wilcoxon signed-rank, Holm-adjusted), submissions in the official order."""
    ranking = document["ranking"]
    names = _ranked(document)
    index = {name: i for i, name in enumerate(ranking["submissions"])}
    order = [index[n] for n in names]
    p = np.array([[np.nan if v is None else v for v in row] for row in ranking["tests"]["p_adjusted"]], dtype=float)
    n = len(names)
    p = p[np.ix_(order, order)] if n else np.zeros((0, 0))
    beats = np.where(np.isnan(p), 0.0, (p < ranking["alpha"]).astype(float))
    if n:
        np.fill_diagonal(beats, np.nan)  # no test of a submission against itself
    cell = 0.32 if n <= 20 else 0.24
    labels = [_short(nm, 20) for nm in names]
    with rc_context(_RC):
        fig, (ax,) = _grid(rows=1, cols=1, panel_in=(max(2.6, cell * n), max(2.6, cell * n)), gap_in=(0, 0),
                           margins_in=(1.6, 0.3, 1.5, 0.3))
        cmap = matplotlib.colors.ListedColormap(["#f2f2f2", "#2a7ab0"]).with_extremes(bad="white")
        ax.imshow(np.ma.masked_invalid(beats), cmap=cmap, vmin=0, vmax=1, aspect="equal")
        ax.set_xticks(range(n), labels, rotation=50, ha="right", fontsize=7 if n > 12 else 8)
        ax.set_yticks(range(n), labels, fontsize=7 if n > 12 else 8)
        ax.set_xlabel("is beaten (column)")
        ax.set_ylabel("beats (row)")
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.0)
        ax.tick_params(which="both", length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        return to_svg(fig, prefix=prefix)


def rank_stability(document: dict, *, prefix: str) -> str:
    """Each ranked submission's rank under the three schemes, joined by a line (challengeR's line plot
    of ranking robustness): crossing lines are places the choice of scheme decides."""
    ranking = document["ranking"]
    names = _ranked(document)
    schemes = list(ranking["schemes"])
    n = len(names)
    colors = submission_colors(n)
    with rc_context(_RC):
        fig, (ax,) = _grid(rows=1, cols=1, panel_in=(3.6, max(2.0, 0.26 * n + 0.4)), gap_in=(0, 0),
                           margins_in=(0.7, 2.2, 0.6, 0.3))
        for i, name in enumerate(names):
            ranks = [ranking["schemes"][s][name] for s in schemes]
            ax.plot(range(len(schemes)), ranks, marker="o", markersize=3.5, color=colors[i], linewidth=1.1)
            ax.text(len(schemes) - 1 + 0.08, ranks[-1] + 0.12 * ((i % 3) - 1), _short(name, 26), va="center",
                    fontsize=7, color=colors[i])
        ax.set_xticks(range(len(schemes)), [s + (" (official)" if s == ranking["official"] else "")
                                            for s in schemes])
        ax.set_xlim(-0.2, len(schemes) - 0.8)
        ax.set_ylim(n + 0.6, 0.4)
        ax.set_yticks(range(1, n + 1) if n <= 15 else range(1, n + 1, max(1, n // 10)))
        ax.set_ylabel("rank")
        ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
        return to_svg(fig, prefix=prefix)


def overview_heatmap(document: dict, *, metric: str, prefix: str) -> str:
    """All submissions x test sets (and CT/MR/All means) of one metric, one row per submission.

    One compact figure that still reads with 30 submissions: rows grow with the number of
    submissions at a fixed height each, names sit on the axis, values are printed in each cell.
    """
    entries = document["submissions"]
    keys = [t["key"] for t in document["test_sets"]]
    groups = [g for g in ("ct", "mr", "all") if document["groups"][g]]
    values = np.full((len(entries), len(keys) + len(groups)), np.nan)
    for i, entry in enumerate(entries):
        for j, key in enumerate(keys):
            score = entry["test_sets"][key][metric]["score"]
            values[i, j] = np.nan if score is None else 100 * score
        for j, group in enumerate(groups):
            score = entry["groups"][group][metric]["score"]
            values[i, len(keys) + j] = np.nan if score is None else 100 * score
    cmap = _HEAT.with_extremes(bad=_MISSING_COLOR)
    with rc_context(_RC):
        fig, (ax,) = _grid(rows=1, cols=1, panel_in=(0.62 * values.shape[1], 0.26 * max(1, len(entries))),
                           gap_in=(0, 0), margins_in=(2.1, 0.9, 0.9, 0.35))
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=7,
                        color="#333333" if np.isnan(v) or v > 60 else "white")
        ax.set_xticks(range(values.shape[1]), [SHORT_TITLES.get(k, k) for k in keys]
                      + [GROUP_TITLES[g] for g in groups], rotation=40, ha="right")
        ax.set_yticks(range(len(entries)), [_short(e["name"], 30) for e in entries], fontsize=7.5)
        ax.axvline(len(keys) - 0.5, color="white", linewidth=2.5)
        ax.set_title(f"{METRIC_TITLES[metric]} (%)")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        box = ax.get_position()
        cax = fig.add_axes((box.x1 + 0.15 / fig.get_figwidth(), box.y0, 0.12 / fig.get_figwidth(), box.height))
        fig.colorbar(image, cax=cax, label="%")
        return to_svg(fig, prefix=prefix)
