"""Plots (matplotlib, imported lazily with the Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def learning_curve(path: str | Path, curves: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
                   title: str = "", ylabel: str = "test accuracy") -> Path:
    """Accuracy vs labels, one line per name, with a ±std band when std is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, (x, y, std) in curves.items():
        ax.plot(x, y, marker="o", ms=3, label=name)
        if std is not None:
            lo = [a - s for a, s in zip(y, std)]
            hi = [a + s for a, s in zip(y, std)]
            ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_xlabel("labeled samples")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def class_histogram(path: str | Path, counts: Sequence[Sequence[float]], classes: Sequence[str],
                    title: str = "", ylabel: str = "labeled samples") -> Path:
    """The labeled set's class counts per round as stacked bars (round r: ``counts[r]``, one
    value per class); many classes share a colour map instead of a legend entry each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    c = np.asarray(counts, dtype=float).reshape(len(counts), -1)
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=120)
    cmap = plt.get_cmap("tab10" if c.shape[1] <= 10 else "tab20" if c.shape[1] <= 20 else "viridis")
    bottom = np.zeros(len(c))
    rounds = np.arange(len(c))
    for k in range(c.shape[1]):
        ax.bar(rounds, c[:, k], bottom=bottom, color=cmap(k / max(1, c.shape[1] - 1) if c.shape[1] > 20 else k),
               label=str(classes[k]) if k < len(classes) else str(k), width=0.8)
        bottom += c[:, k]
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(rounds)
    if c.shape[1] <= 20:
        ax.legend(fontsize=6, ncol=2, title="class", title_fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def image_grid(path: str | Path, rows: Sequence[tuple[str, Sequence]], per_row: int = 16, title: str = "") -> Path:
    """A thumbnail grid: one row per ``(row label, images)``, images as (C, H, W) or (H, W)
    arrays (uint8, or floats in [0, 1]); at most ``per_row`` images a row, each captioned with
    nothing (the row label says what they are)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n_rows = max(1, len(rows))
    cols = max(1, min(per_row, max((len(imgs) for _, imgs in rows), default=1)))
    fig, axes = plt.subplots(n_rows, cols, figsize=(0.75 * cols + 1.2, 0.8 * n_rows + 0.4), dpi=120, squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for j in range(cols):
            ax = axes[r][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(imgs):
                im = np.asarray(imgs[j])
                if im.ndim == 3 and im.shape[0] in (1, 3):
                    im = np.transpose(im, (1, 2, 0))
                if im.ndim == 3 and im.shape[2] == 1:
                    im = im[:, :, 0]
                ax.imshow(im, cmap="gray" if im.ndim == 2 else None, interpolation="nearest")
            if j == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
