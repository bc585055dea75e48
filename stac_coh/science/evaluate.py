"""Accuracy of coherence maps: metrics overall, per coherence bin and per class, and plots.

Every metric uses the pixels where the prediction and the truth are both finite. Bins are
on the TRUE coherence, so a row tells how well a given kind of surface is estimated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stac_coh.errors import InputError
from stac_coh.science.datasets import read_raster

__all__ = [
    "EvaluationReport",
    "Metrics",
    "compute_metrics",
    "evaluate_arrays",
    "evaluate_paths",
    "render_tables",
    "write_json",
    "write_png",
]

F32 = npt.NDArray[np.float32]

CLASS_NAMES = {1: "water", 2: "urban", 3: "bare", 4: "forest", 5: "crops"}
"""Names of the simulated land-cover codes (see ``stac_coh.science.sim.LandCover``)."""


@dataclass(frozen=True)
class Metrics:
    """Error statistics of one prediction against the truth."""

    n: int
    """Pixels compared."""
    rmse: float
    """Root-mean-square error."""
    mae: float
    """Mean absolute error."""
    bias: float
    """Mean of prediction minus truth."""
    r2: float
    """Coefficient of determination (1 - SSE/SST); NaN when the truth is constant."""


def compute_metrics(pred: npt.ArrayLike, truth: npt.ArrayLike) -> Metrics:
    """Metrics over pixels where both arrays are finite."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise InputError(f"Prediction and truth differ in size: {p.size} vs {t.size}.")
    good = np.isfinite(p) & np.isfinite(t)
    n = int(good.sum())
    if n == 0:
        nan = math.nan
        return Metrics(0, nan, nan, nan, nan)
    err = p[good] - t[good]
    sst = float(((t[good] - t[good].mean()) ** 2).sum())
    sse = float((err**2).sum())
    return Metrics(
        n=n,
        rmse=math.sqrt(sse / n),
        mae=float(np.abs(err).mean()),
        bias=float(err.mean()),
        r2=1.0 - sse / sst if sst > 0 else math.nan,
    )


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics of one or more predictions against one truth."""

    overall: dict[str, Metrics]
    """Per prediction name."""
    by_bin: dict[str, list[Metrics]]
    """Per prediction name, one entry per bin of true coherence."""
    bin_edges: list[float]
    """Edges of the coherence bins."""
    by_class: dict[str, dict[str, Metrics]] = field(default_factory=dict)
    """Per prediction name, per class name (when classes were given)."""
    histograms: dict[str, list[list[int]]] = field(default_factory=dict)
    """Per prediction: 50 x 50 counts of (true, predicted) on [0, 1] (for plots)."""


def evaluate_arrays(
    predictions: Mapping[str, npt.ArrayLike],
    truth: npt.ArrayLike,
    *,
    classes: npt.ArrayLike | None = None,
    bins: int = 5,
) -> EvaluationReport:
    """Evaluate named prediction arrays (same shape as ``truth``)."""
    t = np.asarray(truth, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(t, edges[1:-1]), 0, bins - 1)
    overall, by_bin, by_class, hists = {}, {}, {}, {}
    labels = None if classes is None else np.asarray(classes).ravel()
    for name, pred in predictions.items():
        p = np.asarray(pred, dtype=np.float64).ravel()
        overall[name] = compute_metrics(p, t)
        by_bin[name] = [compute_metrics(p[which == b], t[which == b]) for b in range(bins)]
        if labels is not None:
            by_class[name] = {
                CLASS_NAMES.get(int(c), str(int(c))): compute_metrics(
                    p[labels == c], t[labels == c]
                )
                for c in np.unique(labels[np.isfinite(labels)])
                if c != 0
            }
        good = np.isfinite(p) & np.isfinite(t)
        h, _, _ = np.histogram2d(t[good], np.clip(p[good], 0, 1), bins=50, range=[[0, 1]] * 2)
        hists[name] = h.astype(int).tolist()
    return EvaluationReport(overall, by_bin, [float(e) for e in edges], by_class, hists)


def _raster_list(path: Path) -> dict[str, Path]:
    """Rasters of a file or folder by file name."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in {".tif", ".tiff"})
        if not files:
            raise InputError(f"{path} holds no .tif rasters.")
        return {p.name: p for p in files}
    if not path.exists():
        raise InputError(f"{path} does not exist.")
    return {path.name: path}


def _pooled(path: Path, names: list[str], role: str) -> F32:
    """Read the rasters of ``path`` matching ``names`` (in that order) and concatenate them."""
    files = _raster_list(path)
    if len(files) == 1 and len(names) == 1:
        return read_raster(next(iter(files.values()))).values.ravel()
    missing = [n for n in names if n not in files]
    if missing:
        raise InputError(
            f"{role} {path} lacks rasters named like the truth's: {missing[:3]}; folders are "
            "matched by file name."
        )
    return np.concatenate([read_raster(files[n]).values.ravel() for n in names])


def evaluate_paths(
    pred: Path,
    truth: Path,
    *,
    baselines: list[Path] | None = None,
    classes: Path | None = None,
    bins: int = 5,
) -> EvaluationReport:
    """Evaluate rasters or folders of rasters (matched by file name) against the truth."""
    truth_files = _raster_list(truth)
    names = list(truth_files)
    truth_values = np.concatenate([read_raster(truth_files[n]).values.ravel() for n in names])
    predictions: dict[str, F32] = {}
    for path in [pred, *(baselines or [])]:
        key = path.stem if path.is_file() else path.name
        while key in predictions:
            key += "'"
        values = _pooled(path, names, "Prediction")
        if values.size != truth_values.size:
            raise InputError(
                f"{path} has {values.size} pixels but the truth {truth} has "
                f"{truth_values.size}; predict on the truth's grid."
            )
        predictions[key] = values
    labels = None if classes is None else _pooled(classes, names, "Classes")
    return evaluate_arrays(predictions, truth_values, classes=labels, bins=bins)


def render_tables(report: EvaluationReport) -> list[object]:
    """Rich tables: overall, per coherence bin, per class."""
    from rich.table import Table

    def table(title: str, first: str) -> Table:
        t = Table(title=title)
        for col in (first, "prediction", "n", "RMSE", "MAE", "bias", "R2"):
            t.add_column(col, justify="left" if col in (first, "prediction") else "right")
        return t

    def row(t: Table, key: str, name: str, m: Metrics) -> None:
        t.add_row(key, name, str(m.n), *(f"{v:.4f}" for v in (m.rmse, m.mae, m.bias, m.r2)))

    overall = table("Overall", "set")
    for name, m in report.overall.items():
        row(overall, "all", name, m)
    per_bin = table("By true-coherence bin", "bin")
    edges = report.bin_edges
    for b in range(len(edges) - 1):
        for name, ms in report.by_bin.items():
            row(per_bin, f"{edges[b]:.1f}-{edges[b + 1]:.1f}", name, ms[b])
    tables: list[object] = [overall, per_bin]
    if report.by_class:
        per_class = table("By land-cover class", "class")
        first = next(iter(report.by_class.values()))
        for cls in first:
            for name, per_name in report.by_class.items():
                row(per_class, cls, name, per_name[cls])
        tables.append(per_class)
    return tables


def write_json(report: EvaluationReport, path: Path) -> Path:
    """Write the metrics (without histograms) as JSON."""
    body = asdict(report)
    body.pop("histograms")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=1, allow_nan=True))
    return path


def write_png(report: EvaluationReport, path: Path) -> Path:
    """One 2-D histogram (predicted vs true) per prediction plus RMSE/bias by coherence bin."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.colors import LogNorm

    names = list(report.overall)
    ncols = min(len(names) + 1, 4)
    nrows = math.ceil((len(names) + 1) / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.2 * nrows), squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[len(names) + 1 :]:
        ax.axis("off")
    for ax, name in zip(axes, names, strict=False):
        counts = np.asarray(report.histograms[name], dtype=float).T
        ax.imshow(
            np.where(counts > 0, counts, np.nan),
            origin="lower",
            extent=(0, 1, 0, 1),
            norm=LogNorm(),
            cmap="viridis",
        )
        ax.plot([0, 1], [0, 1], color="red", lw=1)
        m = report.overall[name]
        ax.set_title(f"{name}\nRMSE {m.rmse:.3f}  bias {m.bias:+.3f}  R2 {m.r2:.2f}", fontsize=9)
        ax.set_xlabel("true coherence")
        ax.set_ylabel("predicted coherence")
    ax = axes[len(names)]
    edges = np.asarray(report.bin_edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    for name in names:
        rmse = [m.rmse for m in report.by_bin[name]]
        bias = [m.bias for m in report.by_bin[name]]
        (line,) = ax.plot(centres, rmse, marker="o", label=name)
        ax.plot(centres, bias, marker="x", ls="--", color=line.get_color())
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("true coherence (bin centre)")
    ax.set_ylabel("error")
    ax.set_title("RMSE (solid) and bias (dashed) by coherence bin", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
