"""Markdown reports with plots: score distributions, kept fraction per class, and accuracy against ratio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .hub import quality_sentence
from .result import PruneResult


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError('Reports draw plots with matplotlib: `pip install "hf-prune[plots]"`.') from err
    return plt


def plot_score_distributions(result: PruneResult, path: Path) -> Path:
    """One histogram per score: kept rows against removed rows."""
    plt = _pyplot()
    names = list(result.scores)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.3), squeeze=False)
    keep = result.keep_mask
    for ax, name in zip(axes[0], names):
        values = np.asarray(result.scores[name])
        bins = np.histogram_bin_edges(values, bins=40)
        ax.hist(values[keep], bins=bins, alpha=0.65, label=f"kept ({keep.sum()})", color="tab:blue")
        if (~keep).any():
            ax.hist(values[~keep], bins=bins, alpha=0.65, label=f"removed ({(~keep).sum()})", color="tab:orange")
        ax.set_title(f"score_{name}")
        ax.set_xlabel("score (higher = keep)")
        ax.set_ylabel("rows")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_kept_per_class(result: PruneResult, path: Path) -> Path:
    """Bar chart of the fraction of each class's rows that were kept, with the overall fraction as a line."""
    plt = _pyplot()
    counts = result.counts_per_class()
    names = list(counts)
    fractions = [counts[n]["kept"] / counts[n]["total"] for n in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(names) + 2), 3.5))
    ax.bar(range(len(names)), fractions, color="tab:blue")
    ax.axhline(result.num_kept / result.num_samples, color="black", linestyle="--", label="overall kept fraction")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("kept fraction")
    ax.set_title(f"kept fraction per class ({result.method}, {result.selector})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_benchmark(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Accuracy against pruning ratio, one line per method (mean ± std over seeds), full data as a reference."""
    plt = _pyplot()
    table: dict[tuple[str, float], list[float]] = {}
    for row in rows:
        table.setdefault((row["method"], float(row["ratio"])), []).append(100 * float(row["accuracy"]))
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "full"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in methods:
        ratios = sorted(r for (m, r) in table if m == method)
        means = [np.mean(table[(method, r)]) for r in ratios]
        stds = [np.std(table[(method, r)], ddof=1) if len(table[(method, r)]) > 1 else 0.0 for r in ratios]
        ax.errorbar(ratios, means, yerr=stds, marker="o", capsize=3, label=method)
    if ("full", 0.0) in table:
        ax.axhline(np.mean(table[("full", 0.0)]), color="green", linestyle=":", label="full data")
    ax.set_xlabel("pruning ratio (fraction removed)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: PruneResult, output_dir: str, benchmarks: list[str] | None = None) -> Path:
    """Write `report.md` and its PNG plots into `output_dir`; returns the Markdown path."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores_png = plot_score_distributions(result, out / "score_distributions.png")
    classes_png = plot_kept_per_class(result, out / "kept_per_class.png")
    budget = f"ratio {result.ratio}" if result.ratio is not None else f"ε = {result.epsilon}"
    lines = [
        "# hf_prune report",
        "",
        f"**{result.summary()}**",
        "",
        f"Kept {result.num_kept} of {result.num_samples} rows ({budget}). Scores follow one convention: higher means "
        "keep.",
        "",
        "## Scoring run",
        "",
        quality_sentence(result) or "The result does not say how well its scoring run trained (saved by an older "
        "hf_prune).",
        "",
        "## Kept rows per class",
        "",
        "| class | rows | kept | kept fraction |",
        "|---|---|---|---|",
    ]
    for name, count in result.counts_per_class().items():
        lines.append(f"| {name} | {count['total']} | {count['kept']} | {count['kept'] / count['total']:.3f} |")
    lines += ["", f"![kept fraction per class]({classes_png.name})", "", "## Score distributions", "",
              f"![score distributions]({scores_png.name})", ""]
    if result.buckets:
        lines += ["## Solver", "", f"Bucket outcomes: {result.solver_summary()}.", ""]
    selection = (result.info or {}).get("selection") or {}
    if "norm_vs_random" in selection:
        lines += [f"Objective `{selection.get('objective')}` of the chosen set, checked on "
                  f"{selection.get('objective_checked_on', '').replace('_', ' ')}: "
                  f"{selection.get('objective_checked', float('nan')):.4g}, "
                  f"{selection['norm_vs_random']:.3f} × a random selection with the same class counts.", ""]
    for bench in benchmarks or []:
        data = json.loads(Path(bench).read_text())
        rows = data["rows"]
        task = data.get("meta", {}).get("task", Path(bench).stem)
        png = plot_benchmark(rows, out / f"benchmark_{task}.png", f"{task}: accuracy against pruning ratio")
        lines += [f"## Benchmark `{task}`", "", data.get("meta", {}).get("protocol", ""), "",
                  f"![accuracy against ratio]({png.name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
