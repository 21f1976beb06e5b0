"""The paper's figures: confusion matrices like Fig. 3 and t-SNE maps like Fig. 4.

Figures are built with matplotlib's object API on the Agg canvas (no display, no global
pyplot state) and returned as :class:`matplotlib.figure.Figure` objects, so they can be
inspected (axes labels, titles, legends) before :func:`save_figure` writes them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Class colours of the t-SNE maps (colour-blind safe, matplotlib's tab10 order).
CLASS_COLOURS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
#: Marker per class, so the classes stay apart in grey-scale prints.
CLASS_MARKERS: tuple[str, ...] = ("o", "^", "s", "D", "v")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def row_percent(cm: np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix in % (rows = true class); an empty row stays 0."""
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square confusion matrix, got shape {cm.shape}")
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(100.0 * cm, totals, out=np.zeros_like(cm), where=totals > 0)


def _wrapped(title: str, width_in: float) -> str:
    """A title wrapped to the figure width (about 11 characters per inch at 12 pt)."""
    return textwrap.fill(title, width=max(30, int(width_in * 11)))


def confusion_figure(
    matrices: Mapping[str, np.ndarray | None],
    class_names: Sequence[str],
    title: str,
    paper: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """One panel per model of row-normalised confusion matrices (Fig. 3).

    ``matrices`` maps a panel title (e.g. ``"(a) Basic Inception"``) to a count matrix
    (rows = true class, columns = predicted class), or ``None`` for a model not run yet
    (an empty panel saying so). Each cell shows our percentage and, when ``paper`` has
    the same panel title, the paper's below it in brackets. The colour is our
    percentage (one shared 0-100 % colour bar).
    """
    k = len(class_names)
    width = 4.3 * len(matrices) + 1.0
    fig = _new_figure(width, 4.6)
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    image = None
    ticks = [c.capitalize() for c in class_names]
    for ax, (name, cm) in zip(axes, matrices.items(), strict=True):
        ax.set_xticks(range(k), ticks)
        ax.set_yticks(range(k), ticks)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        if cm is None:
            ax.set_xlim(-0.5, k - 0.5)
            ax.set_ylim(k - 0.5, -0.5)
            ax.set_aspect("equal")
            ax.text((k - 1) / 2, (k - 1) / 2, "not yet run", ha="center", va="center",
                    fontsize=12, color="grey")
            ax.set_title(f"{name} (not yet run)")
            continue
        pct = row_percent(cm)
        if pct.shape != (k, k):
            raise ValueError(f"panel {name!r}: matrix {pct.shape} for {k} classes")
        image = ax.imshow(pct, cmap="Blues", vmin=0.0, vmax=100.0)
        ref = None if paper is None else paper.get(name)
        for i in range(k):
            for j in range(k):
                text = f"{pct[i, j]:.2f}"
                if ref is not None:
                    text += f"\n(paper {ref[i][j]:.2f})"
                colour = "white" if pct[i, j] > 55 else "black"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=9)
        ax.set_title(name)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), shrink=0.85)
        bar.set_label("% of the true class")
    fig.suptitle(_wrapped(title, width))
    return fig


def tsne_embedding(features: np.ndarray, seed: int = 0, perplexity: float | None = None
                   ) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA initialisation) of ``(N, D)`` features.

    ``perplexity`` defaults to 30, lowered to ``(N - 1) / 3`` for small N (t-SNE needs
    it below N). It runs on one OpenMP thread: beside PyTorch's thread pool (or any
    other busy process) scikit-learn's Barnes-Hut threads can spin for many seconds on a
    map of a few hundred points, and one thread gives the same map on every machine.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if len(x) < 3:
        raise ValueError(f"t-SNE needs at least 3 samples, got {len(x)}")
    p = perplexity if perplexity is not None else min(30.0, max(1.0, (len(x) - 1) / 3.0))
    with threadpool_limits(limits=1):
        tsne = TSNE(n_components=2, perplexity=p, init="pca", random_state=seed)
        return tsne.fit_transform(x)


def tsne_figure(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    title: str,
) -> Figure:
    """Scatter plots of 2-D embeddings, one panel each, coloured by class (Fig. 4).

    ``panels`` maps a panel title to ``(xy (N, 2), labels (N,))``.
    """
    fig = _new_figure(5.0 * len(panels), 5.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, (xy, labels)) in zip(axes, panels.items(), strict=True):
        xy = np.asarray(xy)
        labels = np.asarray(labels)
        for c, cname in enumerate(class_names):
            sel = labels == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=22, alpha=0.85,
                       color=CLASS_COLOURS[c % len(CLASS_COLOURS)],
                       marker=CLASS_MARKERS[c % len(CLASS_MARKERS)],
                       label=f"{cname.capitalize()} ({int(sel.sum())})")
        ax.set_title(name)
        ax.set_xlabel("t-SNE dimension 1")
        ax.set_ylabel("t-SNE dimension 2")
        ax.legend(title="True class", loc="best", fontsize=8, title_fontsize=8)
    fig.suptitle(_wrapped(title, 5.0 * len(panels)))
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` (PNG by the suffix of ``path``) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
