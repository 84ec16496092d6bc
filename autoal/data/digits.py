"""scikit-learn's bundled digits: 1,797 real 8x8 grayscale images, no download needed."""

from __future__ import annotations

import numpy as np
import torch

from autoal.data.base import ALDataset
from autoal.data.registry import DataSpec, register_dataset


@register_dataset("digits")
def load_digits(spec: DataSpec) -> ALDataset:
    """Split 75/25 into pool/test with a fixed, stratified split (seed ``options.split_seed``,
    default 0) so that every run sees the same test set."""
    import sklearn
    from sklearn.datasets import load_digits as sk_load
    from sklearn.model_selection import train_test_split

    bunch = sk_load()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N,1,8,8)
    y = bunch.target.astype(np.int64)
    test_size = float(spec.options.get("test_fraction", 0.25))
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_size, random_state=int(spec.options.get("split_seed", 0)), stratify=y)
    return ALDataset(
        name="digits",
        x_train=torch.from_numpy(x[tr]),
        y_train=torch.from_numpy(y[tr]),
        x_test=torch.from_numpy(x[te]),
        y_test=torch.from_numpy(y[te]),
        num_classes=10,
        classes=[str(i) for i in range(10)],
        augmentation="none",
        source=f"scikit-learn {sklearn.__version__} bundled digits",
    )
