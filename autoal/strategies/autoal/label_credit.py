"""Credit from the labels that arrive (DESIGN.md §3.10): what one round's picks were worth, measured
once their labels are known, per candidate that picked them. Pure functions of arrays.

- *competence*: the accuracy, on a candidate's picks, of the predictions the task model made before
  the picks were labeled (DCoM, Mishal & Weinshall 2024, estimates the same competence on the
  labeled set; here the freshly labeled picks are fresh, unseen samples, so the estimate is not
  optimistic). On coverage picks — typical samples of regions the labeled set does not cover — a
  high competence says the model already generalizes to new regions: coverage has little left to
  teach, its uncertainty is worth following.
- *rarity*: TAILOR's class-diversity reward (Zhang et al., NeurIPS 2023): a pick of a class the
  labeled set holds few of earns more; 1 = a class with the mean count per class.
- *diversity*: distinct classes among the picks over the most there could be.

:func:`uncertainty_share` turns a competence estimate into the round's share of uncertainty picks,
:func:`rarity_share` the two sides' decayed rarity (:class:`DecayedMean`),
:func:`late_tail_signal` reads a long tail from the same two rarities and their evidence,
:func:`imbalance_pvalue` (:func:`imbalance_pvalues` for many at once) tests a labeled sample's classes against a uniform prior (the long-tail
guard), :func:`imbalance_beyond_pvalue` against an imbalance of a given tail ratio (the second look's guard), :func:`prior_shifted` moves a model's posteriors from the labeled set's class prior to a
uniform one, :class:`CompetenceEstimate` keeps a decayed Beta posterior over rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PickCredit:
    """One candidate's credit for one round's picks (``count`` of them; NaN fields when none)."""

    count: int
    competence: float
    rarity: float
    diversity: float


def pick_credit(predicted: np.ndarray, truth: np.ndarray, labeled_counts: np.ndarray) -> PickCredit:
    """The credit of picks whose pre-label predictions were ``predicted`` and whose labels are
    ``truth``; ``labeled_counts[c]``: how many labeled samples of class c there were *before* the
    picks arrived (TAILOR's reward is relative to those)."""
    predicted = np.asarray(predicted, dtype=np.int64)
    truth = np.asarray(truth, dtype=np.int64)
    counts = np.asarray(labeled_counts, dtype=np.float64)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted and truth differ in shape: {predicted.shape} vs {truth.shape}")
    m = int(truth.shape[0])
    if m == 0:
        return PickCredit(0, math.nan, math.nan, math.nan)
    num_classes = counts.shape[0]
    mean_count = counts.sum() / max(num_classes, 1)
    rarity = float(np.mean((mean_count + 1.0) / (counts[truth] + 1.0)))
    diversity = float(len(np.unique(truth)) / min(m, num_classes))
    return PickCredit(m, float(np.mean(predicted == truth)), rarity, diversity)


@dataclass
class CompetenceEstimate:
    """A Beta(``prior`` + correct, ``prior`` + wrong) posterior over the model's competence on
    coverage picks whose counts decay by ``decay`` each round, so the estimate follows a model that
    improves; 0.5 (no evidence) before the first labels arrive. ``prior`` 0 is the decayed
    hit rate itself. With few coverage picks per round (the probe share, late in a run) the
    decayed counts stay small, and a prior of 1 holds the mean below 1 even when every pick was
    right: with k picks a round it cannot pass (1 + 2k)/(2 + 2k)."""

    correct: float = 0.0
    wrong: float = 0.0
    decay: float = 0.5
    prior: float = 1.0

    def update(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        hits = float(np.sum(np.asarray(predicted) == np.asarray(truth)))
        self.correct = self.decay * self.correct + hits
        self.wrong = self.decay * self.wrong + (len(truth) - hits)

    @property
    def mean(self) -> float:
        total = 2.0 * self.prior + self.correct + self.wrong
        return (self.prior + self.correct) / total if total > 0 else 0.5

    def state_dict(self) -> dict[str, float]:
        return {"correct": self.correct, "wrong": self.wrong, "decay": self.decay}


@dataclass
class DecayedMean:
    """The mean of values that arrive in rounds, each round's sum and count decayed by ``decay``
    first, so the mean follows a signal that drifts; NaN before the first value."""

    total: float = 0.0
    count: float = 0.0
    decay: float = 0.5

    def update(self, mean: float, count: int) -> None:
        self.total = self.decay * self.total + mean * count
        self.count = self.decay * self.count + count

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def state_dict(self) -> dict[str, float]:
        return {"total": self.total, "count": self.count, "decay": self.decay}


def rarity_share(coverage: float, uncertainty: float, probe: float) -> float:
    """The round's share of uncertainty picks by TAILOR's reward (Zhang et al., NeurIPS 2023):
    ``probe`` while the coverage picks' class rarity (a decayed mean) is at least the uncertainty
    picks' — or either side has no evidence yet (NaN) — else 1 − ``probe``: coverage keeps the
    batch while it finds the rarer classes."""
    if not 0.0 <= probe <= 0.5:
        raise ValueError(f"probe must be in [0, 0.5]; got {probe}")
    if math.isnan(coverage) or math.isnan(uncertainty) or coverage >= uncertainty:
        return probe
    return 1.0 - probe


def late_tail_signal(coverage: DecayedMean, uncertainty: DecayedMean, z: float | None) -> bool:
    """Whether the arrived picks say the pool is long-tailed after all: the uncertainty picks'
    class rarity (TAILOR's reward; means over the picks so far, :class:`DecayedMean` with any
    decay) exceeds the coverage picks' by more than ``z`` standard errors, z·√(1/n_c + 1/n_u)
    with n the (decayed) pick counts and a unit spread per pick (on a balanced labeled set every
    class's rarity is near 1, so the true spread is smaller and the test errs towards silence).
    On a long tail density coverage follows the
    head classes while uncertainty finds the rare ones, so its picks are the rarer by a margin; on
    a balanced pool the two are alike, and a gap over one or two probe picks is noise (bench/
    README.md, "A late long-tail signal"). False before both sides have evidence, or with ``z``
    None (off)."""
    if z is None or not coverage.count or not uncertainty.count:
        return False
    gap = uncertainty.mean - coverage.mean
    return gap > z * math.sqrt(1.0 / coverage.count + 1.0 / uncertainty.count)


def uncertainty_share(competence: float, low: float, high: float, probe: float) -> float:
    """The round's share of uncertainty picks: ``probe`` while competence ≤ ``low``, 1 − ``probe``
    from ``high`` on, linear between; each side keeps at least ``probe`` so both stay measured."""
    if not 0.0 <= probe <= 0.5:
        raise ValueError(f"probe must be in [0, 0.5]; got {probe}")
    if not low < high:
        raise ValueError(f"low must be below high; got {low} and {high}")
    ramp = min(1.0, max(0.0, (competence - low) / (high - low)))
    return probe + (1.0 - 2.0 * probe) * ramp


def split_batch(n: int, share: float, probe: float) -> tuple[int, int]:
    """(coverage picks, uncertainty picks) of a batch of ``n`` for an uncertainty ``share``; a
    side with a positive probe share gets at least one pick when n ≥ 2."""
    n_unc = int(round(share * n))
    if n >= 2 and probe > 0:
        n_unc = min(max(n_unc, 1), n - 1)
    return n - n_unc, n_unc


def imbalance_pvalues(counts: np.ndarray) -> np.ndarray:
    """For every row of ``counts`` (labeled samples per class, from a random sample of the pool)
    the p-value of Pearson's χ² test that they come from a uniform class prior; 1.0 where there are
    too few samples to tell (fewer than 2 per class on average). One row or a million at once."""
    from scipy.stats import chi2

    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    if counts.ndim != 2:
        raise ValueError(f"counts must be one row of class counts or a matrix of rows; got shape {counts.shape}")
    k = counts.shape[1]
    if k < 2:
        return np.ones(counts.shape[0])
    stat, too_few = _uniform_chi2(counts)
    return np.where(too_few, 1.0, chi2.sf(stat, k - 1))


def _uniform_chi2(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``counts`` (k >= 2 columns): Pearson's χ² statistic against a uniform class prior,
    and whether the row has too few samples to test (fewer than 2 per class on average; its
    statistic is then meaningless)."""
    k = counts.shape[1]
    total = counts.sum(1)
    too_few = total < 2 * k
    expected = np.where(too_few, 1.0, total / k)
    return ((counts - expected[:, None]) ** 2).sum(1) / expected, too_few


def imbalance_pvalue(counts: np.ndarray) -> float:
    """The long-tail guard's p-value of one labeled set's class counts (:func:`imbalance_pvalues`)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1:
        raise ValueError(f"counts must be one row of class counts; got shape {counts.shape}")
    return float(imbalance_pvalues(counts)[0])


def tail_effect_size(ratio: float, num_classes: int) -> float:
    """Cohen's w = sqrt(sum_c (p_c - 1/C)^2 / (1/C)) of the class prior of an exponential long tail
    of imbalance ratio ``ratio`` over ``num_classes`` classes, p_c ∝ ratio^(-c/(C-1)) — the profile
    :mod:`autoal.data.subset` builds (Cao et al., NeurIPS 2019). 0 for ratio 1 (balanced)."""
    if not ratio >= 1:
        raise ValueError(f"ratio must be >= 1; got {ratio!r}")
    if num_classes < 2:
        return 0.0
    p = float(ratio) ** (-np.arange(num_classes) / (num_classes - 1))
    p /= p.sum()
    return float(np.sqrt(((p - 1.0 / num_classes) ** 2).sum() * num_classes))


def imbalance_beyond_pvalue(counts: np.ndarray, ratio: float) -> float:
    """The p-value that ``counts`` (labeled samples per class) show a class imbalance *larger* than
    an exponential tail of ratio ``ratio`` (:func:`tail_effect_size` w0): Pearson's χ² statistic
    against the noncentral χ²(C − 1, n·w0²) that it follows at that imbalance (Cohen 1988, §7.2).
    Plain :func:`imbalance_pvalue` asks whether any imbalance is there, which with a few hundred
    labels finds the small class skew coverage picks carry on a balanced pool; this asks whether
    the imbalance is one that matters. ratio 1 is :func:`imbalance_pvalue`; 1.0 where there are
    too few samples to tell (fewer than 2 per class on average)."""
    from scipy.stats import chi2, ncx2

    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1:
        raise ValueError(f"counts must be one row of class counts; got shape {counts.shape}")
    k, n = counts.shape[0], float(counts.sum())
    w0 = tail_effect_size(ratio, k)
    if k < 2:
        return 1.0
    stat, too_few = _uniform_chi2(counts[None, :])
    if too_few[0]:
        return 1.0
    return float(chi2.sf(stat[0], k - 1)) if w0 == 0 else float(ncx2.sf(stat[0], k - 1, n * w0 * w0))


def prior_shifted(logits: torch.Tensor, labeled_counts: np.ndarray, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, probabilities) of a model trained under the labeled set's class prior π, moved to a
    uniform prior: p'(c|x) ∝ p(c|x) / π_c^τ (Saerens et al., Neural Computation 2002, eq. 2.4 with
    a uniform target prior; the logit adjustment of Menon et al., ICLR 2021, with τ = 1 the
    Bayes correction). π is the Laplace-smoothed class frequency of ``labeled_counts``; τ = 0
    returns the model's own probabilities. On a long-tailed pool the model's predictions lean to
    the head classes; after the shift a sample of a rare class that the model half-recognizes sits
    near the (uniform-prior) decision boundary, where margin-like scores find it."""
    counts = np.asarray(labeled_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.shape[0] != logits.shape[-1]:
        raise ValueError(f"labeled_counts must have one entry per class ({logits.shape[-1]}); got shape {counts.shape}")
    prior = (counts + 1.0) / (counts.sum() + counts.shape[0])
    shift = torch.as_tensor(tau * np.log(prior), dtype=logits.dtype, device=logits.device)
    shifted = logits - shift
    return shifted, torch.softmax(shifted, dim=-1)


def class_quotas(n: int, labeled_counts: np.ndarray, available: np.ndarray) -> np.ndarray:
    """``n`` picks split over classes in proportion to 1/(labeled count + 1) — the fewer labels a
    class has, the more of the batch looks for it (the inverse-frequency weights of class-balanced
    sampling) — with no class given more than it has ``available``; largest remainders round, and
    what a capped class cannot take goes to the others by the same weights. Sums to
    min(n, available.sum())."""
    counts = np.asarray(labeled_counts, dtype=np.float64)
    avail = np.asarray(available, dtype=np.int64)
    if counts.shape != avail.shape or counts.ndim != 1:
        raise ValueError(
            f"labeled_counts and available must be vectors of one length; got {counts.shape}, {avail.shape}"
        )
    quota = np.zeros_like(avail)
    left = min(int(n), int(avail.sum()))
    while left > 0:
        open_ = quota < avail
        w = np.where(open_, 1.0 / (counts + 1.0), 0.0)
        share = left * w / w.sum()
        add = np.floor(share).astype(np.int64)
        rest = left - int(add.sum())
        if rest:
            order = np.argsort(-(share - add), kind="stable")
            add[order[:rest]] += 1
        add = np.minimum(add, avail - quota)
        quota += add
        left -= int(add.sum())
    return quota
