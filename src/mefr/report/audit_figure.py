"""The audit figure: composite UF1 and training loss against epoch, with the honest and
LEAKY selections of :func:`mefr.evaluate.audit.audit_run` marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mefr.evaluate.audit import LEAKY, AuditResult
from mefr.evaluate.metrics import COMPOSITE


def audit_figure(results: Sequence[AuditResult], path: str | Path,
                 labels: Sequence[str] | None = None) -> Path:
    """Write a PNG: per run, the composite UF1 after each epoch (mean over seeds with a
    band of one standard deviation) with the selections' scores as marks on the right
    (and the per-subject choice against shuffled labels, when measured), the paper's
    figure as a dashed line, and the median training loss per epoch below.
    Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(labels or [r.model for r in results])
    fig, (ax, ax_loss) = plt.subplots(2, 1, figsize=(7.5, 7.0), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (res, label) in enumerate(zip(results, labels, strict=True)):
        c = colours[i % len(colours)]
        epochs = np.arange(1, res.uf1_by_epoch.shape[1] + 1)
        mean = np.nanmean(res.uf1_by_epoch, axis=0)
        ax.plot(epochs, mean, color=c, lw=1.6, label=f"{label}: UF1 after each epoch "
                f"({len(res.seeds)} seed{'' if len(res.seeds) == 1 else 's'})")
        if len(res.seeds) > 1:
            sd = np.nanstd(res.uf1_by_epoch, axis=0, ddof=1)
            ax.fill_between(epochs, mean - sd, mean + sd, color=c, alpha=0.18, lw=0)
        x_right = epochs[-1] + 2 + 6 * i
        for sel in dict.fromkeys(res.scores["selection"]):
            value, _ = res.cell(sel, COMPOSITE, "uf1")
            leaky = str(res.scores[res.scores["selection"] == sel]["kind"].iloc[0]) == LEAKY
            ax.plot([x_right], [value], marker="v" if leaky else "o", color=c,
                    markerfacecolor="none" if leaky else c, ms=7, ls="none")
        if res.shuffled:  # the per-subject choice with no signal to find
            ax.plot([x_right], [float(np.mean(res.shuffled["per subject"][COMPOSITE]))], marker="x",
                    color=c, ms=7, ls="none")
        if res.reference and "uf1" in res.reference:
            ax.axhline(res.reference["uf1"], color=c, ls="--", lw=1,
                       label=f"{label}: published UF1 {res.reference['uf1']:.4f}")
        loss = np.median(res.train_loss, axis=1)  # (S, E): median over folds
        ax_loss.plot(epochs, loss.mean(0), color=c, lw=1.4, label=label)
    ax.plot([], [], marker="o", color="k", ls="none", label="honest selection (right)")
    ax.plot([], [], marker="v", color="k", markerfacecolor="none", ls="none",
            label="LEAKY selection: the test fold chose (right)")
    if any(r.shuffled for r in results):
        ax.plot([], [], marker="x", color="k", ls="none",
                label="best epoch per subject, test labels shuffled: no signal (right)")
    ax.set_ylabel("composite UF1 (Eq. 10)")
    ax.legend(fontsize=7.5, loc="lower right")
    ax.grid(alpha=0.3)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (median over folds)")
    ax_loss.grid(alpha=0.3, which="both")
    ax_loss.legend(fontsize=7.5)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
