"""The in-memory data set every loader returns, and the transforms applied to it.

A data set holds one of two kinds of samples (:attr:`ALDataset.kind`), one tensor per split:

- ``images``: (N, C, H, W), any number of channels; ``uint8`` (8-bit pixels, read as x / 255) or
  ``float32`` (kept as given: no quantization, any range, negative values included);
- ``features``: (N, D) ``float32`` feature vectors (tabular data, embeddings); never augmented.

Both are normalized the same way by :meth:`ALDataset.eval_transform`: per channel (images) or per
feature (features), minus the pool's mean, divided by the pool's standard deviation (a constant
float channel or feature is only centred). Normalization and augmentation run on whole batches of
tensors (on the GPU when there is one), so training and scoring never loop over samples in
Python. Scoring always uses :meth:`ALDataset.eval_transform`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from autoal.api_marker import public_api
from autoal.data.checks import coverage_warnings
from autoal.errors import DataError

AUGMENTATIONS = ("none", "crop_flip", "crop")
#: the kinds of samples a data set holds (see the module docstring)
KINDS = ("images", "features")
#: names how :meth:`ALDataset.identity` digests the images (every byte of both splits); a saved
#: identity without this key was written by the sampled scheme (:meth:`ALDataset.legacy_identity`)
IDENTITY_HASH = "sha256-all-bytes"
#: images hashed per update: 8 MB of 32x32 RGB images, a view (no copy) of a contiguous split
_HASH_CHUNK = 2048


@public_api
@dataclass
class ALDataset:
    """A labeled classification data set, split into a pool (train) and a test set.

    ``x_*`` are image tensors (N, C, H, W), uint8 or float32, or feature tensors (N, D) float32
    (:attr:`kind`; see the module docstring); ``y_*`` int64 tensors (N,). ``augmentation``
    defaults to ``crop_flip`` for images and must be ``none`` for features. ``paths`` holds the
    source file of each pool image when the data came from files a person can open (an image
    folder); it is used to export samples for human labeling. ``source`` says in a few words what
    was read (a folder, a file, a package's bundled copy). ``info`` describes the splits as used:
    ``pool_class_counts``, ``imbalance_ratio`` (largest / smallest pool class), ``pool_size``,
    ``test_size``, ``class_warnings`` (:func:`~autoal.data.checks.coverage_warnings`: test
    classes the pool lacks, pool classes the test split lacks); it is recomputed from the labels
    whenever a data set is built.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    classes: list[str] = field(default_factory=list)
    augmentation: str | None = None
    paths: list[str] | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_arrays(self.name, "train", self.x_train, self.y_train, self.num_classes)
        validate_arrays(self.name, "test", self.x_test, self.y_test, self.num_classes)
        if self.x_train.ndim != self.x_test.ndim or self.x_train.dtype != self.x_test.dtype:
            raise DataError(
                f"{self.name}: the pool holds {self.x_train.dtype} samples of shape "
                f"{tuple(self.x_train.shape[1:])} but the test split {self.x_test.dtype} samples of shape "
                f"{tuple(self.x_test.shape[1:])}; both splits must be of one kind and dtype"
            )
        if self.augmentation is None:
            self.augmentation = "crop_flip" if self.kind == "images" else "none"
        if self.kind == "features" and self.augmentation != "none":
            raise DataError(
                f"{self.name}: feature data (N, D) is never augmented; augmentation must be 'none', "
                f"got {self.augmentation!r}"
            )
        if self.augmentation not in AUGMENTATIONS:
            raise DataError(f"{self.name}: augmentation {self.augmentation!r} is not one of {AUGMENTATIONS}")
        if not self.classes:
            self.classes = [str(c) for c in range(self.num_classes)]
        mean, std = _channel_stats(self.x_train) if self.x_train.dtype == torch.uint8 else _float_stats(self.x_train)
        self.mean = mean
        self.std = std
        self.info = {
            **self.info,
            **split_stats(self.y_train, self.y_test, self.num_classes),
            "class_warnings": coverage_warnings(self.y_train, self.y_test, self.num_classes, self.classes),
        }
        self._digests: tuple[tuple, dict[str, str]] | None = None

    @property
    def kind(self) -> str:
        """``images`` ((N, C, H, W) tensors) or ``features`` ((N, D) tensors)."""
        return "features" if self.x_train.ndim == 2 else "images"

    @property
    def in_channels(self) -> int:
        """Image channels C, or for features the number of features D (a feature vector is read as
        D channels of one pixel: :attr:`image_size` is then 1)."""
        return int(self.x_train.shape[1])

    def describe_kind(self) -> str:
        """A few words on the samples, for messages: ``images (N, 3, 32, 32) uint8`` or
        ``features (N, 30) float32``."""
        dtype = str(self.x_train.dtype).replace("torch.", "")
        return f"{self.kind} (N, {', '.join(str(d) for d in self.x_train.shape[1:])}) {dtype}"

    def identity(self) -> dict[str, Any]:
        """What identifies the data a run computes on: the name, the split shapes, the number of
        classes and SHA-256 digests of all labels and of every byte of each split's images
        (``hash`` names that scheme), so that two data sets with the same name but any other
        pixel or label differ. The digests are computed once per content (a split changed in
        place is hashed again)."""
        out = {
            "name": self.name,
            "hash": IDENTITY_HASH,
            "train_shape": list(self.x_train.shape),
            "test_shape": list(self.x_test.shape),
            "num_classes": int(self.num_classes),
            **self._content_digests(),
        }
        if self.x_train.dtype != torch.uint8:  # uint8 images keep the identity they always had
            out["dtype"] = str(self.x_train.dtype).replace("torch.", "")
        return out

    def legacy_identity(self) -> dict[str, Any]:
        """The identity run folders written before the full-content digests hold (no ``hash``
        key): images digested from up to 256 evenly spaced samples per split. Only to resume
        those folders, which it checks the way they were written."""

        def sample_digest(x: torch.Tensor) -> str:
            step = max(1, len(x) // 256)
            return hashlib.sha256(x[::step].contiguous().numpy().tobytes()).hexdigest()[:16]

        return {
            "name": self.name,
            "train_shape": list(self.x_train.shape),
            "test_shape": list(self.x_test.shape),
            "num_classes": int(self.num_classes),
            "labels_sha256": self._content_digests()["labels_sha256"],
            "train_sample_sha256": sample_digest(self.x_train),
            "test_sample_sha256": sample_digest(self.x_test),
        }

    def _content_digests(self) -> dict[str, str]:
        tensors = (self.x_train, self.x_test, self.y_train, self.y_test)
        # a tensor changed in place bumps its version counter: the digests are then recomputed
        key = tuple((id(t), t.data_ptr(), t._version, tuple(t.shape)) for t in tensors)
        if self._digests is None or self._digests[0] != key:
            labels = hashlib.sha256(self.y_train.numpy().tobytes() + b"|" + self.y_test.numpy().tobytes())
            self._digests = (
                key,
                {
                    "labels_sha256": labels.hexdigest()[:16],
                    "train_sha256": stream_digest(self.x_train),
                    "test_sha256": stream_digest(self.x_test),
                },
            )
        return dict(self._digests[1])

    def fingerprint(self) -> str:
        """A short hash of :meth:`identity`."""
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]

    def legacy_fingerprint(self) -> str:
        """A short hash of :meth:`legacy_identity` (the fingerprint before full-content digests)."""
        return hashlib.sha256(json.dumps(self.legacy_identity(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def image_size(self) -> int:
        """The images' width in pixels; 1 for features."""
        return int(self.x_train.shape[-1]) if self.kind == "images" else 1

    def eval_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Batch -> normalized float batch (no augmentation): uint8 pixels are read as x / 255,
        float32 values as given; then per channel (images) or per feature (features) minus the
        pool's mean, over the pool's standard deviation."""
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = self.mean.to(x.device).view(shape)
        std = self.std.to(x.device).view(shape)
        if x.dtype == torch.uint8:
            return (x.float() / 255.0 - mean) / std
        return (x.float() - mean) / std

    def display_images(self, indices: Any) -> list[np.ndarray] | None:
        """The pool samples ``indices`` as thumbnails for figures: uint8 images as stored; float
        images with 3 channels stretched to [0, 1] per image, with another channel count their
        first channel (grayscale). None for features (nothing to show as an image)."""
        if self.kind != "images":
            return None
        out = []
        for i in indices:
            x = self.x_train[int(i)]
            if x.dtype != torch.uint8:
                x = x if x.shape[0] == 3 else x[:1]
                lo, hi = float(x.min()), float(x.max())
                x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
            out.append(x.numpy())
        return out

    def pca_input(self) -> torch.Tensor:
        """The pool as a label-free coverage space reads it (:func:`autoal.strategies.autoal.pool_embedding.pixel_pca`):
        the stored images (uint8 pixels are scaled to [0, 1] there), or the standardized
        features (:meth:`eval_transform`), so that no feature dominates by its unit."""
        return self.x_train if self.kind == "images" else self.eval_transform(self.x_train)

    def train_transform(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Batch -> augmented, normalized float batch (random crop with 4-px padding and
        horizontal flip for natural images; nothing for digits and similar, nor for features)."""
        out = self.eval_transform(x)
        if self.augmentation == "none":
            return out
        return random_crop_flip(out, flip=self.augmentation == "crop_flip", generator=generator)


def random_crop_flip(
    x: torch.Tensor, flip: bool, pad: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``, default H/8) and optional horizontal flip."""
    n, _, h, w = x.shape
    pad = max(1, h // 8) if pad is None else pad
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dev = x.device
    gen_dev = generator.device if generator is not None else torch.device("cpu")
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gen_dev).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gen_dev).to(dev)
    rows = oy.view(n, 1) + torch.arange(h, device=dev).view(1, h)  # (n, h)
    cols = ox.view(n, 1) + torch.arange(w, device=dev).view(1, w)  # (n, w)
    idx_r = rows.view(n, 1, h, 1).expand(n, x.shape[1], h, padded.shape[-1])
    out = padded.gather(2, idx_r)
    idx_c = cols.view(n, 1, 1, w).expand(n, x.shape[1], h, w)
    out = out.gather(3, idx_c)
    if flip:
        mask = torch.rand(n, generator=generator, device=gen_dev).to(dev) < 0.5
        out = torch.where(mask.view(n, 1, 1, 1), out.flip(-1), out)
    # keep a channels-last batch channels-last (gather returns the default layout; on a GPU a
    # layout change costs a conversion kernel in front of every convolution)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def stream_digest(x: torch.Tensor, chunk: int = _HASH_CHUNK) -> str:
    """SHA-256 (16 hex digits) of every byte of ``x`` in row-major order, fed to the hash
    ``chunk`` samples at a time: a contiguous tensor is read through views, never copied whole
    (a non-contiguous one is copied a chunk at a time)."""
    h = hashlib.sha256()
    for start in range(0, len(x), chunk):
        h.update(memoryview(x[start : start + chunk].contiguous().numpy()).cast("B"))
    return h.hexdigest()[:16]


def split_stats(y_train: torch.Tensor, y_test: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """Pool class counts, measured imbalance ratio (largest / smallest class; inf when a class is
    absent from the pool) and the sizes of both splits."""
    counts = torch.bincount(y_train, minlength=num_classes).tolist() if len(y_train) else [0] * num_classes
    low = min(counts)
    return {
        "pool_class_counts": counts,
        "imbalance_ratio": max(counts) / low if low else float("inf"),
        "pool_size": int(len(y_train)),
        "test_size": int(len(y_test)),
    }


def _channel_stats(x: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images in [0, 1], from a histogram of the 256 pixel
    values per channel, counted over chunks (so that no wider copy of the pool is ever held):
    the sums of x and x² are then exact integers (7× faster than summing a float64 copy, which
    took 1.3 s of the 2 s MNIST's 60,000 images take to load)."""
    c = x.shape[1]
    hist = torch.zeros(c, 256, dtype=torch.int64)
    for start in range(0, len(x), chunk):
        xb = x[start : start + chunk]
        for ch in range(c):
            hist[ch] += torch.bincount(xb[:, ch].reshape(-1), minlength=256)
    v = torch.arange(256, dtype=torch.int64)
    s1 = (hist * v).sum(1).double() / 255.0
    s2 = (hist * v * v).sum(1).double() / (255.0 * 255.0)
    n = max(1, x.shape[0] * x.shape[2] * x.shape[3])
    mean = s1 / n
    var = (s2 / n - mean * mean).clamp_min(0) * (n / max(n - 1, 1))
    return mean.float(), var.sqrt().float().clamp_min(1e-3)


def _float_stats(x: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (images (N, C, H, W)) or per-feature (features (N, D)) mean and unbiased
    standard deviation of float samples, summed in float64 over chunks. A constant channel or
    feature gets std 1 (it is only centred: dividing by ~0 would blow up test values)."""
    c = x.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    dims = [0] + list(range(2, x.ndim))
    for start in range(0, len(x), chunk):
        xb = x[start : start + chunk].double()
        s1 += xb.sum(dims)
        s2 += xb.square().sum(dims)
    n = max(1, x.shape[0] * int(np.prod(x.shape[2:])))
    mean = s1 / n
    var = (s2 / n - mean * mean).clamp_min(0) * (n / max(n - 1, 1))
    std = var.sqrt()
    std = torch.where(std > 1e-6 * mean.abs().clamp_min(1.0), std, torch.ones_like(std))
    return mean.float(), std.float()


def validate_arrays(name: str, split: str, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> None:
    """Check shapes, dtypes and label range of one split; raise DataError naming what is wrong:
    images uint8 or float32 (N, C, H, W), features float32 (N, D)."""
    where = f"{name} ({split} split)"
    ok = isinstance(x, torch.Tensor) and (
        x.ndim == 4 and x.dtype in (torch.uint8, torch.float32) or x.ndim == 2 and x.dtype == torch.float32
    )
    if not ok:
        raise DataError(
            f"{where}: samples must be images, a uint8 or float32 tensor of shape (N, C, H, W), or "
            f"features, a float32 tensor of shape (N, D); got {getattr(x, 'dtype', type(x))} with "
            f"shape {tuple(getattr(x, 'shape', ()))}"
        )
    if x.shape[1] == 0:
        raise DataError(f"{where}: samples have no {'channel' if x.ndim == 4 else 'feature'} (shape {tuple(x.shape)})")
    if x.ndim == 4 and (x.shape[2] == 0 or x.shape[3] == 0):
        raise DataError(
            f"{where}: images have zero height or width (shape {tuple(x.shape)}); expected images "
            "of at least 1x1 pixels"
        )
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.ndim != 1:
        raise DataError(
            f"{where}: labels must be an int64 vector; got {getattr(y, 'dtype', type(y))} "
            f"with shape {tuple(getattr(y, 'shape', ()))}"
        )
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} samples but {len(y)} labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"{where}: labels must lie in [0, {num_classes - 1}]; found range [{int(y.min())}, {int(y.max())}]"
        )


def to_uint8_nchw(images: np.ndarray, source: str) -> torch.Tensor:
    """Convert an image array (N,H,W), (N,H,W,C) or (N,C,H,W), uint8 or float in [0,1] or
    [0,255], into a uint8 NCHW tensor. Raises DataError on NaN/inf or an unusable shape."""
    a = np.asarray(images)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise DataError(f"{source}: image array contains NaN or infinite values")
        if a.size and a.max() <= 1.0 + 1e-6 and a.min() >= 0:
            a = a * 255.0
        if a.size and (a.min() < 0 or a.max() > 255):
            raise DataError(
                f"{source}: float pixel values must lie in [0, 1] or [0, 255]; found [{a.min():.3g}, {a.max():.3g}]"
            )
        a = np.rint(a).astype(np.uint8)
    elif a.dtype.kind in "iu":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise DataError(f"{source}: integer pixel values must lie in [0, 255]; found [{a.min()}, {a.max()}]")
        a = a.astype(np.uint8)
    else:
        raise DataError(f"{source}: images must be numeric; got dtype {a.dtype}")
    a = _channels_first(a, f"{source}: images must have shape (N,H,W), (N,H,W,C) or (N,C,H,W); got {a.shape}")
    if a.shape[1] not in (1, 3):
        raise DataError(f"{source}: images must have 1 or 3 channels; got shape {a.shape}")
    if a.shape[2] == 0 or a.shape[3] == 0:
        raise DataError(
            f"{source}: images have zero height or width (shape (N, C, H, W) = {a.shape}); expected "
            "images of at least 1x1 pixels"
        )
    return torch.from_numpy(np.ascontiguousarray(a))


def _channels_first(a: np.ndarray, refusal: str) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in {1, 3} (and the second axis not) ->
    (N, C, H, W); other 4-D arrays as they are; any other rank: DataError ``refusal``."""
    if a.ndim == 3:
        return a[:, None]
    if a.ndim == 4:
        return a.transpose(0, 3, 1, 2) if a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3) else a
    raise DataError(refusal)


def to_samples(array: np.ndarray, source: str) -> torch.Tensor:
    """Convert a user's array into the tensor an :class:`ALDataset` holds (module docstring):

    - (N, D): features, any real or integer dtype -> float32 (N, D);
    - (N, H, W), (N, C, H, W) or (N, H, W, C) images (channels last only when the last axis is 1
      or 3 and the second is not; any other 4-D array is read as (N, C, H, W), any C): uint8, and
      integers within [0, 255], -> uint8 (8-bit pixels, exactly as before); any other integers and
      every float -> float32 kept as given (no quantization, negative values allowed).

    Raises DataError on NaN/inf, non-numeric dtypes or an unusable shape."""
    a = np.asarray(array)
    if a.dtype.kind not in "fiub" or a.dtype.kind == "b":
        raise DataError(f"{source}: samples must be numeric (images or features); got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise DataError(f"{source}: array contains NaN or infinite values")
    if a.ndim == 2:
        if a.shape[1] == 0:
            raise DataError(f"{source}: feature array (N, D) has no feature column (shape {a.shape})")
        if a.dtype.kind == "f" and a.size and np.abs(a).max() > np.finfo(np.float32).max:
            raise DataError(f"{source}: feature values beyond float32's range ({np.abs(a).max():.3g})")
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    a = _channels_first(
        a, f"{source}: samples must be features (N, D) or images (N,H,W), (N,H,W,C) or (N,C,H,W); got shape {a.shape}"
    )
    if a.shape[2] == 0 or a.shape[3] == 0:
        raise DataError(
            f"{source}: images have zero height or width (shape (N, C, H, W) = {a.shape}); expected "
            "images of at least 1x1 pixels"
        )
    if a.shape[1] == 0:
        raise DataError(f"{source}: images have no channel (shape (N, C, H, W) = {a.shape})")
    eight_bit = a.dtype == np.uint8 or a.dtype.kind in "iu" and (not a.size or (a.min() >= 0 and a.max() <= 255))
    if eight_bit:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.uint8))
    if a.dtype.kind == "f" and a.size and np.abs(a).max() > np.finfo(np.float32).max:
        raise DataError(f"{source}: pixel values beyond float32's range ({np.abs(a).max():.3g})")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def to_labels(labels: np.ndarray, source: str) -> torch.Tensor:
    """Convert labels (N,) or (N,1) of an integer dtype into an int64 tensor."""
    a = np.asarray(labels)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise DataError(f"{source}: labels must have shape (N,) or (N, 1); got {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or not np.all(a == np.round(a)):
            raise DataError(f"{source}: labels must be integers; got non-integer floats")
    elif a.dtype.kind not in "iu":
        raise DataError(f"{source}: labels must be integers; got dtype {a.dtype}")
    return torch.from_numpy(a.astype(np.int64))
