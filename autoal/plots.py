"""Plots (matplotlib, imported lazily with the Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def learning_curve(
    path: str | Path,
    curves: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
    title: str = "",
    ylabel: str = "test accuracy",
) -> Path:
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
    """Lay out, write (creating the folder) and close a matplotlib figure. The layout is done
    once: ``tight_layout`` leaves a placeholder layout engine behind, for which ``savefig``
    walks every artist a second time before drawing (a third of a figure's cost here; the
    pixels are the same without it)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.set_layout_engine(None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def class_histogram(
    path: str | Path,
    counts: Sequence[Sequence[float]],
    classes: Sequence[str],
    title: str = "",
    ylabel: str = "labeled samples",
) -> Path:
    """The labeled set's class counts per round as stacked bars (round r: ``counts[r]``, one
    value per class); many classes share a colour map instead of a legend entry each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Rectangle

    c = np.asarray(counts, dtype=float).reshape(len(counts), -1)
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=120)
    cmap = plt.get_cmap("tab10" if c.shape[1] <= 10 else "tab20" if c.shape[1] <= 20 else "viridis")
    rounds = np.arange(len(c))
    top = np.cumsum(c, axis=1)
    bottom = top - c
    handles = []
    # one collection of rectangles per class, drawn as ``ax.bar`` draws its bars (width 0.8, no
    # edge, the bottoms sticky for the margins), at a fraction of the cost of a patch per bar
    for k in range(c.shape[1]):
        color = cmap(k / max(1, c.shape[1] - 1) if c.shape[1] > 20 else k)
        verts = [
            [(x - 0.4, b), (x - 0.4, t), (x + 0.4, t), (x + 0.4, b)] for x, b, t in zip(rounds, bottom[:, k], top[:, k])
        ]
        bars = PolyCollection(verts, facecolors=[color], edgecolors="none", linewidths=0)
        bars.sticky_edges.y.extend(bottom[:, k].tolist())
        ax.add_collection(bars, autolim=True)
        handles.append(Rectangle((0, 0), 1, 1, facecolor=color, label=str(classes[k]) if k < len(classes) else str(k)))
    ax.autoscale_view()
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(rounds)
    if c.shape[1] <= 20:
        ax.legend(
            handles=handles,
            fontsize=6,
            ncol=2,
            title="class",
            title_fontsize=6,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def image_grid(path: str | Path, rows: Sequence[tuple[str, Sequence]], per_row: int = 16, title: str = "") -> Path:
    """A thumbnail grid: one row per ``(row label, images)``, images as (C, H, W) or (H, W)
    arrays (uint8, or floats in [0, 1]); at most ``per_row`` images a row, each captioned with
    nothing (the row label says what they are). The thumbnails are laid out in one mosaic image
    on one axes (an axes per thumbnail cost matplotlib ≈ 40 ms each: 7 s for a 10-round run's
    picks, a fifth of the run); a grayscale thumbnail is scaled to its own range, as ``imshow``
    does one image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = max(1, len(rows))
    cols = max(1, min(per_row, max((len(imgs) for _, imgs in rows), default=1)))
    thumbs = [[_thumbnail_rgb(im) for im in list(imgs)[:cols]] for _, imgs in rows]
    h = max((t.shape[0] for row in thumbs for t in row), default=1)
    w = max((t.shape[1] for row in thumbs for t in row), default=1)
    gap = max(1, min(h, w) // 8)
    mosaic = _mosaic(thumbs, n_rows, cols, h, w, gap)
    fig, ax = plt.subplots(figsize=(0.75 * cols + 1.2, 0.8 * n_rows + 0.4), dpi=120)
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(len(rows))])
    ax.set_yticklabels([label for label, _ in rows], fontsize=7)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def captioned_grid_figure(
    images: Sequence,
    captions: Sequence[str],
    per_row: int = 10,
    title: str = "",
    row_labels: Sequence[str] | None = None,
    fontsize: float = 6.0,
):
    """A thumbnail sheet whose every image carries its own caption, centred in a white band under
    it (for a person who labels from the sheet: the caption is the CSV's id). Returns
    ``(fig, ax, cells)``: ``cells[k] = (x0, y0, w, h)`` is image ``k``'s box in the axes' data
    coordinates (x to the right, y down, as ``imshow`` draws), its caption ``ax.texts[k]``. The
    images are one mosaic on one axes, as in :func:`image_grid`."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if len(captions) != len(images):
        raise ValueError(f"captions: {len(captions)} for {len(images)} images")
    cols = max(1, min(per_row, len(images)))
    n_rows = max(1, math.ceil(len(images) / cols))
    thumbs = [_thumbnail_rgb(im) for im in images]
    h = max((t.shape[0] for t in thumbs), default=1)
    w = max((t.shape[1] for t in thumbs), default=1)
    gap = max(1, min(h, w) // 8)
    cell_in = 0.8  # inches per column
    per_in = (w + gap) / cell_in  # data units per inch
    lines = max((str(c).count("\n") + 1 for c in captions), default=1)
    band = math.ceil(per_in * (0.06 + lines * fontsize * 1.3 / 72))  # the caption band under each row
    pitch_y = h + band
    canvas = _mosaic([thumbs[r * cols : (r + 1) * cols] for r in range(n_rows)], n_rows, cols, pitch_y - gap, w, gap)
    canvas = np.concatenate([canvas, np.ones((gap, canvas.shape[1], 3))])  # the last row's band, full height
    left_in = 0.9 if row_labels else 0.1
    top_in = 0.35 if title else 0.1
    ax_w, ax_h = canvas.shape[1] / per_in, canvas.shape[0] / per_in
    fig_w, fig_h = left_in + ax_w + 0.1, top_in + ax_h + 0.1
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=120)
    ax = fig.add_axes((left_in / fig_w, 0.1 / fig_h, ax_w / fig_w, ax_h / fig_h))
    ax.imshow(canvas, interpolation="nearest", aspect="equal")
    ax.set_xlim(-0.5, canvas.shape[1] - 0.5)
    ax.set_ylim(canvas.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([r * pitch_y + (h - 1) / 2 for r in range(n_rows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(list(row_labels)[:n_rows], fontsize=7)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    cells = []
    for k, text in enumerate(captions):
        r, j = divmod(k, cols)
        x0, y0 = j * (w + gap) - 0.5, r * pitch_y - 0.5
        cells.append((x0, y0, float(w), float(h)))
        ax.text(
            x0 + w / 2,
            y0 + h + 0.03 * per_in,
            str(text),
            ha="center",
            va="top",
            fontsize=fontsize,
            linespacing=1.1,
            clip_on=False,
        )
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.05 / fig_h, va="top")
    return fig, ax, cells


def captioned_grid(
    path: str | Path,
    images: Sequence,
    captions: Sequence[str],
    per_row: int = 10,
    title: str = "",
    row_labels: Sequence[str] | None = None,
) -> Path:
    """:func:`captioned_grid_figure`, written to ``path`` (PNG; the axes placed by hand, so
    pixel positions follow the figure's own layout)."""
    import matplotlib.pyplot as plt

    fig, _, _ = captioned_grid_figure(images, captions, per_row=per_row, title=title, row_labels=row_labels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _thumbnail_rgb(image):
    """(C, H, W), (H, W, C) or (H, W) → (H, W, 3) floats in [0, 1]: RGB as given (uint8 / 255,
    floats clipped), grayscale stretched to its own min..max (black when constant), as
    ``imshow`` shows one image with a gray colour map."""
    import numpy as np

    im = np.asarray(image)
    if im.ndim == 3 and im.shape[0] in (1, 3):
        im = np.transpose(im, (1, 2, 0))
    if im.ndim == 3 and im.shape[2] == 1:
        im = im[:, :, 0]
    if im.ndim == 2:
        g = im.astype(np.float64)
        lo, hi = float(g.min()), float(g.max())
        g = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
        return np.repeat(g[:, :, None], 3, axis=2)
    rgb = im.astype(np.float64) / 255.0 if im.dtype.kind in "iu" else im.astype(np.float64)
    return np.clip(rgb, 0.0, 1.0)


def _mosaic(thumbs, n_rows: int, cols: int, h: int, w: int, gap: int):
    """The thumbnails on a white canvas, row r / column j at ``(r·(h+gap), j·(w+gap))``."""
    import numpy as np

    canvas = np.ones((n_rows * (h + gap) - gap, cols * (w + gap) - gap, 3))
    for r, row in enumerate(thumbs):
        for j, t in enumerate(row):
            y, x = r * (h + gap), j * (w + gap)
            canvas[y : y + t.shape[0], x : x + t.shape[1]] = t
    return canvas
