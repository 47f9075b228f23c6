"""Tables, files and plots of evaluation results (:class:`vos_seg.evaluation.EvaluationResult`).

* :func:`markdown_table`: rows dataset x score, columns AUROC, AP, FPR95, sIoU, PPV, mean F1 (in %).
* :func:`write_json` / :func:`write_csv`: the nested ``{dataset: {score: {auroc, ap, fpr95, siou, ppv, f1, ...}}}``
  (fractions in [0, 1]; values that could not be computed are ``null`` / empty).
* :func:`plot_curves`: one PNG per dataset, ROC and precision-recall side by side, a line per score.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["TABLE_COLUMNS", "markdown_table", "write_json", "write_csv", "plot_curves"]

#: (key in the metrics dict, column header)
TABLE_COLUMNS = (("auroc", "AUROC"), ("ap", "AP"), ("fpr95", "FPR95"), ("siou", "sIoU"), ("ppv", "PPV"), ("f1", "mean F1"))
_CSV_KEYS = ("auroc", "ap", "fpr95", "siou", "ppv", "f1", "f1_threshold", "best_f1", "component_threshold", "track",
             "num_frames")
_MAX_PLOT_POINTS = 4000

Metrics = Mapping[str, Mapping[str, Mapping[str, Any]]]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}" if _finite(value) else "n/a"


def markdown_table(metrics: Metrics) -> str:
    """A Markdown table of the main figures, in percent (FPR95: lower is better; the others: higher)."""
    header = "| Dataset | Score | " + " | ".join(title for _, title in TABLE_COLUMNS) + " |"
    rule = "|" + "---|" * (2 + len(TABLE_COLUMNS))
    rows = [header, rule]
    for dataset, by_score in metrics.items():
        for score, values in by_score.items():
            cells = [_percent(values.get(key)) for key, _ in TABLE_COLUMNS]
            rows.append(f"| {dataset} | {score} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_value(value.item())
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def write_json(metrics: Metrics, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``metrics`` (NaN -> null) as JSON; ``extra`` keys (e.g. ``skipped``) go under ``"_meta"``."""
    data = _json_value(metrics)
    if extra:
        data["_meta"] = _json_value(extra)
    path = Path(path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def write_csv(metrics: Metrics, path: str | os.PathLike) -> Path:
    """One row per dataset and score: ``dataset,score,auroc,ap,fpr95,siou,ppv,f1,...`` (fractions)."""
    path = Path(path)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("dataset", "score") + _CSV_KEYS)
        for dataset, by_score in metrics.items():
            for score, values in by_score.items():
                cells = []
                for key in _CSV_KEYS:
                    value = values.get(key)
                    cells.append("" if value is None or (isinstance(value, float) and not math.isfinite(value))
                                 else value)
                writer.writerow((dataset, score, *cells))
    return path


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most ``_MAX_PLOT_POINTS`` points, first and last kept (curves may have ~1e5 operating points)."""
    if len(x) <= _MAX_PLOT_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, _MAX_PLOT_POINTS).round().astype(int))
    return x[keep], y[keep]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_curves(curves: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], metrics: Metrics,
                out_dir: str | os.PathLike) -> list[Path]:
    """Save ``<out_dir>/curves_<dataset>.png``: ROC (left) and precision-recall (right), one line per score.

    The legend gives each score's AUROC (ROC panel) or AP (PR panel); the ROC panel marks TPR = 95%, where
    FPR95 is read, and the PR panel the anomaly prevalence (the AP of a random score).

    Returns:
        The paths written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for dataset, by_score in curves.items():
        fig = Figure(figsize=(11, 4.8), layout="constrained")
        FigureCanvasAgg(fig)
        roc_ax, pr_ax = fig.subplots(1, 2)
        prevalence = None
        for score, curve in by_score.items():
            values = metrics.get(dataset, {}).get(score, {})
            fpr, tpr = _thin(np.asarray(curve["fpr"]), np.asarray(curve["tpr"]))
            roc_ax.plot(fpr, tpr, label=f"{score} (AUROC {_percent(values.get('auroc'))}%)")
            recall, precision = _thin(np.asarray(curve["recall"]), np.asarray(curve["precision"]))
            pr_ax.plot(recall, precision, label=f"{score} (AP {_percent(values.get('ap'))}%)")
            n_pos, n_neg = values.get("num_anomaly"), values.get("num_inlier")
            if _finite(n_pos) and _finite(n_neg) and n_pos + n_neg > 0:
                prevalence = n_pos / (n_pos + n_neg)
        roc_ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
        roc_ax.axhline(0.95, color="0.4", linestyle="--", linewidth=0.8, label="TPR 95% (FPR95)")
        roc_ax.set(xlabel="false-positive rate (in-distribution pixels)", ylabel="true-positive rate (anomaly pixels)",
                   title=f"{dataset}: ROC", xlim=(0, 1), ylim=(0, 1.01))
        if prevalence is not None:
            pr_ax.axhline(prevalence, color="0.6", linestyle=":", linewidth=1,
                          label=f"chance (prevalence {100 * prevalence:.2f}%)")
        pr_ax.set(xlabel="recall (anomaly pixels)", ylabel="precision", title=f"{dataset}: precision-recall",
                  xlim=(0, 1), ylim=(0, 1.01))
        for ax in (roc_ax, pr_ax):
            ax.grid(True, alpha=0.3)
            ax.legend(loc="lower right" if ax is roc_ax else "upper right", fontsize="small")
        path = out_dir / f"curves_{_safe_name(dataset)}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    return written
