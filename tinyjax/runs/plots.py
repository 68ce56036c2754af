"""PNG plots of a run (matplotlib, headless Agg backend)."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # No display needed; must precede pyplot.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def curves(history: list[dict], path: str, title: str, replicas: list[list[dict]] = ()) -> None:
    """Loss and accuracy per epoch, train, validation (when held out) and test, side by side.
    With ``replicas`` (the members' histories of a ``--seeds`` run, ``history`` their mean) a
    shaded band spans the lowest to the highest member at each epoch (of those that trained it:
    with ``--early-stop`` members may stop sooner)."""
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for split in [s for s in ("train", "val", "test") if f"{s}_loss" in history[0]]:
        for ax, metric in ((loss_ax, f"{split}_loss"), (acc_ax, f"{split}_acc")):
            line, = ax.plot(epochs, [h[metric] for h in history], marker="o", ms=3, label=split)
            if replicas:
                values = [[r[e][metric] for r in replicas if len(r) > e] for e in range(len(epochs))]
                ax.fill_between(epochs, [min(v) for v in values], [max(v) for v in values], color=line.get_color(),
                                alpha=0.2)
    loss_ax.set(xlabel="epoch", ylabel="loss (cross-entropy)", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # Epochs are whole.
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path, title)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """``int64 [K, K]``: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def confusion(labels: np.ndarray, predictions: np.ndarray, path: str, title: str,
              class_names: Sequence[str] = tuple(map(str, range(10)))) -> None:
    """The test-set confusion matrix with counts in the cells, axes labelled with ``class_names``."""
    k = len(class_names)
    matrix = confusion_matrix(labels, predictions, k)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > matrix.max() / 4 else "black")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
    names = [n[:10] for n in class_names]
    ax.set_xticklabels(names, rotation=90 if max(map(len, names)) > 2 else 0, fontsize=7)
    ax.set_yticklabels(names, fontsize=7)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    _save(fig, path)


def misclassified(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, path: str,
                  title: str, limit: int = 40, class_names: Sequence[str] | None = None) -> None:
    """A grid of the first ``limit`` misclassified images (``uint8 [N, H, W, C]``, C = 1 in grey,
    C = 3 in colour) with their true and predicted labels, 10 to a row.

    Drawn as one montage image on one axes (a label above each tile) rather than one axes per
    image: the same picture in about a fifth of the time (40 axes took ~1 s on a 2-core CPU, most
    of a short run's finish)."""
    wrong = np.flatnonzero(labels != predictions)[:limit]
    cols, (h, w, c) = 10, images.shape[1:]
    rows, gap = max(1, -(-len(wrong) // cols)), max(2, h // 7)  # gap: white pixels between tiles.
    montage = np.full((rows * (h + gap), cols * (w + gap), c), 255 if c == 3 else 0, np.uint8)
    for n, i in enumerate(wrong):
        r, k = divmod(n, cols)
        montage[r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = images[i]
    fig, ax = plt.subplots(figsize=(cols * 1.1, rows * 1.3))
    if c == 1:  # Ink dark on white, as the digits are written; the gaps (0) white.
        ax.imshow(montage[..., 0], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(montage, interpolation="nearest")
    ax.axis("off")
    name = (lambda k: str(k) if class_names is None else class_names[k][:8])
    for n, i in enumerate(wrong):
        r, k = divmod(n, cols)
        ax.text(k * (w + gap) + w / 2, r * (h + gap) - 0.5, f"{name(labels[i])} -> {name(predictions[i])}",
                ha="center", va="bottom", fontsize=8, color="crimson")
    _save(fig, path, f"{title}: {int((labels != predictions).sum())} misclassified (true -> predicted)")


def lr_find(lrs, losses: np.ndarray, finals: np.ndarray, suggestion: float | None,
            flat: tuple[float, float] | None, path: str, title: str) -> None:
    """``--find-lr``'s plot: left, each rate's final loss (``finals``, inf: diverged, drawn as a cross
    at the top) against the rate on a log axis, the suggestion marked and the ``flat`` range shaded;
    right, every rate's training loss per step (``losses float32 [S, K]``, NaN after a divergence)."""
    fig, (final_ax, curve_ax) = plt.subplots(1, 2, figsize=(11, 4))
    finite = np.isfinite(finals)
    top = float(np.nanmax(np.where(np.isfinite(losses), losses, np.nan))) if np.isfinite(losses).any() else 1.0
    final_ax.plot(np.asarray(lrs)[finite], finals[finite], marker="o")
    if not finite.all():
        final_ax.plot(np.asarray(lrs)[~finite], [top] * int((~finite).sum()), "x", color="red", label="diverged")
    if suggestion is not None:
        final_ax.axvline(suggestion, color="green", linestyle="--", label=f"suggested {suggestion:.3g}")
        final_ax.axvspan(*flat, color="green", alpha=0.1, label="plateau: within 5% of the lowest loss")  # TOLERANCE
    final_ax.set(xscale="log", yscale="log", xlabel="learning rate (constant)", ylabel="final training loss",
                 title="final loss per learning rate")
    colors = plt.cm.viridis(np.linspace(0, 1, len(lrs)))
    for k, lr in enumerate(lrs):
        curve_ax.plot(np.arange(1, len(losses) + 1), losses[:, k], color=colors[k], lw=1, label=f"{lr:.2g}")
    first = losses[0][np.isfinite(losses[0])]
    curve_ax.set(xlabel="step", ylabel="training loss (batch mean)", title="loss per step", yscale="log",
                 ylim=(None, 4 * float(first.max()) if first.size else None))  # Above 4x the first loss: diverging.
    curve_ax.legend(fontsize=6, ncol=2, title="lr", title_fontsize=7)
    for ax in (final_ax, curve_ax):
        ax.grid(alpha=0.3)
    final_ax.legend()
    _save(fig, path, title)


def halving(histories: list[list[dict]], metric: str, rungs: list[int], ranking: list[int], labels: list[str],
            path: str, title: str) -> None:
    """``--halving``'s plot: every point's ``metric`` per epoch (``histories[k]``, as long as the point
    trained), the rungs as dashed lines, the points that trained to the end in colour (the winner,
    ``ranking[0]``, thickest) and the pruned ones in grey."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    survivors = [k for k in ranking if len(histories[k]) == max(len(h) for h in histories)]
    for k, h in enumerate(histories):
        epochs, values = [r["epoch"] for r in h], [r[metric] for r in h]
        if k in survivors:
            ax.plot(epochs, values, marker=".", lw=2.5 if k == ranking[0] else 1.2, zorder=3,
                    label=f"{'winner: ' if k == ranking[0] else ''}{labels[k]}")
        else:
            ax.plot(epochs, values, marker=".", ms=3, lw=0.8, color="grey", alpha=0.6)
    for r in rungs[:-1]:
        ax.axvline(r, color="black", linestyle="--", lw=0.8)
    ax.set(xscale="log", xlabel="epoch (log scale; dashed: rungs)", ylabel=metric,
           title=f"{len(histories)} points; grey: pruned at a rung")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path, title)


def _save(fig, path: str, title: str | None = None) -> None:
    """Writes ``fig`` (with ``title`` above it) to the PNG ``path`` and frees it."""
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
