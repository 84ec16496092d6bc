"""Seeds. Every round derives its own generators from (run seed, round, purpose), so a run
resumed at round r draws exactly what an uninterrupted run draws there."""

from __future__ import annotations

import random

import numpy as np
import torch

PURPOSES = {"init": 0, "train": 1, "query": 2, "cache": 3, "search": 4}


def derive_seed(seed: int, round_: int, purpose: str) -> int:
    ss = np.random.SeedSequence([int(seed), int(round_), PURPOSES[purpose]])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def round_rng(seed: int, round_: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, round_, purpose))


def seed_torch(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
