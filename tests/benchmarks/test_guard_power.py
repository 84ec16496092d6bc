"""bench/guard_power.py: how often the long-tail guard sees a tail in the first labeled set. The
simulation's p-values must be the guard's own, its draws the pools ``imbalance_ratio`` builds, and
its rates the exact ones where they can be computed by hand."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.guard_power import first_set_counts, guard_power, lrt_statistic  # noqa: E402

from autoal.data.subset import long_tail_quotas
from autoal.strategies.autoal.label_credit import imbalance_pvalue, imbalance_pvalues


def _scalar_guard(counts: np.ndarray) -> float:
    """The guard's formula as it was written before it was vectorized (one row, early return)."""
    from scipy.stats import chi2

    counts = np.asarray(counts, dtype=np.float64)
    k, total = counts.shape[0], counts.sum()
    if k < 2 or total < 2 * k:
        return 1.0
    expected = total / k
    return float(chi2.sf(float(((counts - expected) ** 2).sum() / expected), k - 1))


def test_the_vectorized_pvalues_are_the_guards_own_to_the_bit():
    rng = np.random.default_rng(0)
    ten = np.concatenate([rng.multinomial(n, np.full(10, 0.1), size=50) for n in (5, 19, 20, 37, 200)])
    three = rng.multinomial(30, [0.5, 0.3, 0.2], size=20)
    tail = rng.multinomial(50, np.geomspace(1, 0.05, 10) / np.geomspace(1, 0.05, 10).sum(), size=200)
    for counts in (ten, three, tail):
        want = np.array([_scalar_guard(c) for c in counts])
        assert (imbalance_pvalues(counts) == want).all()  # the guard's decisions cannot move
        assert [imbalance_pvalue(c) for c in counts] == want.tolist()
    got = imbalance_pvalues(ten)
    assert (got[:100] == 1.0).all() and (got[100:] < 1.0).all()  # 5 and 19 labels: too few to tell
    assert (imbalance_pvalues(np.array([[7], [0]])) == 1.0).all()  # one class: nothing to test
    with pytest.raises(ValueError, match="one row"):
        imbalance_pvalue(ten)


def test_first_sets_are_draws_without_replacement_from_the_long_tail_pool():
    quotas = long_tail_quotas(40, 10.0, 5)  # [40, 22, 12, 7, 4]
    counts = first_set_counts(quotas, 60, 300, np.random.default_rng(1))
    assert counts.shape == (300, 5) and (counts.sum(1) == 60).all() and (counts <= np.array(quotas)).all()
    assert counts[:, 0].mean() > counts[:, 4].mean()
    with pytest.raises(ValueError, match="exceeds the pool"):
        first_set_counts(quotas, sum(quotas) + 1, 1, np.random.default_rng(0))


def test_the_likelihood_ratio_statistic_is_zero_on_uniform_counts_and_grows_with_the_tail():
    stat = lrt_statistic(np.array([[4, 4, 4, 4], [8, 4, 2, 2], [13, 1, 1, 1], [1, 1, 1, 13]]))
    assert stat[0] == pytest.approx(0.0, abs=1e-12)
    assert 0 < stat[1] < stat[2] and stat[2] == pytest.approx(stat[3])  # classes are ranked: order does not matter
    with pytest.raises(ValueError, match="start at 1"):
        lrt_statistic(np.array([[1, 2]]), grid=np.array([2.0, 3.0]))


def _exact_false_fire(n: int, k: int, alpha: float) -> float:
    """P(imbalance_pvalue < alpha) for n draws from a uniform k-class prior, by enumerating counts."""
    total = 0.0
    for cut in itertools.combinations(range(n + k - 1), k - 1):
        counts = np.diff([-1, *cut, n + k - 1]) - 1
        prob = math.factorial(n) / math.prod(math.factorial(int(c)) for c in counts) / k**n
        total += prob if imbalance_pvalue(counts) < alpha else 0.0
    return total


def test_the_false_fire_rate_matches_the_exact_one_and_the_rate_grows_with_the_tail():
    exact = _exact_false_fire(9, 3, 0.2)
    rows = guard_power([1.0, 5.0, 50.0], [9], num_classes=3, n_max=100000, alpha=0.2, trials=20000, seed=3)
    rate = {r["ratio"]: r for r in rows}
    se = math.sqrt(exact * (1 - exact) / 20000)
    assert abs(rate[1.0]["chi2"] - exact) < 4 * se
    assert rate[1.0]["chi2"] < rate[5.0]["chi2"] < rate[50.0]["chi2"]
    # the likelihood-ratio test is held to the guard's false-fire rate on balanced pools
    assert rate[1.0]["lrt"] <= rate[1.0]["chi2"] + 4 * se
    assert rate[5.0]["lrt"] > rate[1.0]["lrt"] + 0.1


def test_more_first_labels_see_a_mild_tail_more_often():
    rows = guard_power([5.0], [20, 50], trials=4000, seed=0)
    assert rows[0]["first_set"] == 20 and rows[0]["chi2"] + 0.2 < rows[1]["chi2"]


def test_the_default_table_gives_bench_readmes_and_designs_numbers():
    """bench/README.md ("What the first set can show") and DESIGN.md §3.10 step 4 quote these rows
    of ``python bench/guard_power.py`` (its defaults: seed 0, 20,000 first sets per row)."""
    rows = guard_power([1, 2, 5, 10, 20, 50, 100], [20, 50, 100])
    got = {(r["first_set"], r["ratio"]): (r["chi2"], r["lrt"]) for r in rows}
    quoted = {  # (first set, ratio): (χ², likelihood-ratio test) as printed with this machine's numpy
        (20, 1.0): (0.174, 0.171),
        (20, 5.0): (0.512, 0.501),
        (20, 10.0): (0.759, 0.748),
        (20, 20.0): (0.920, 0.913),
        (50, 1.0): (0.193, 0.188),
        (50, 5.0): (0.877, 0.875),
        (50, 10.0): (0.994, 0.994),
    }
    # another numpy may draw another stream (its Generator promises no stream across versions):
    # hold the rates to three Monte Carlo standard errors of 20,000 draws (≤ 0.011), not to the digit
    for key, want in quoted.items():
        assert np.allclose(got[key], want, atol=0.011), (key, got[key], want)
