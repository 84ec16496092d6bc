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
