"""Data sets: the in-memory :class:`ALDataset` and the loader registry."""

from autoal.data.base import ALDataset
from autoal.data.registry import DataSpec, dataset_names, load_dataset, register_dataset

__all__ = ["ALDataset", "DataSpec", "dataset_names", "load_dataset", "register_dataset"]
