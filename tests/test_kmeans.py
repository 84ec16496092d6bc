"""k-means (autoal/kmeans.py): seeding, Lloyd, picks — on CPU here, and the CUDA-graph seeding
where a GPU is present (bench/gpu.py repeats the CUDA checks on the lent GPU)."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from autoal import kmeans as km


def _blobs(n_per=50, centres=10, dim=8, spread=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(centres, dim, generator=g) * 10
    label = torch.arange(centres).repeat_interleave(n_per)
    return c[label] + spread * torch.randn(centres * n_per, dim, generator=g), label


def test_sample_by_weight_follows_the_weights_and_never_draws_zero_weight():
    w = torch.tensor([0.0, 1.0, 3.0, 0.0, 6.0])
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(km._sample_by_weight(w, u), minlength=5).double() / len(u)
    assert freq[0] == 0 and freq[3] == 0
    assert freq[[1, 2, 4]].tolist() == pytest.approx([0.1, 0.3, 0.6], abs=0.005)
    assert km._sample_by_weight(torch.zeros(4), torch.tensor([0.0, 0.5, 0.999])).tolist() == [3, 3, 3]


def test_seeding_puts_one_seed_in_every_well_separated_cluster():
    x, label = _blobs()
    for seed in range(5):
        seeds = km.kmeans_plus_plus(x, 10, torch.Generator().manual_seed(seed))
        assert sorted(label[seeds].tolist()) == list(range(10))


def test_greedy_seeding_beats_single_trial_seeding_on_average():
    x = torch.randn(3000, 16, generator=torch.Generator().manual_seed(1))

    def potential(trials, seed):
        seeds = km.kmeans_plus_plus(x, 30, torch.Generator().manual_seed(seed), n_trials=trials)
        d, _ = km.assign_to_nearest(km.augment_rows(x), x[seeds])
        return float(d.sum())

    greedy = np.mean([potential(None, s) for s in range(5)])
    single = np.mean([potential(1, s) for s in range(5)])
    assert greedy < single


def test_assign_to_nearest_matches_brute_force_in_blocks(monkeypatch):
    g = torch.Generator().manual_seed(2)
    x, c = torch.randn(500, 7, generator=g), torch.randn(40, 7, generator=g)
    monkeypatch.setattr(km, "BLOCK_ELEMENTS", 40 * 64)  # 8 blocks of 64 rows
    d, idx = km.assign_to_nearest(km.augment_rows(x), c)
    ref = torch.cdist(x.double(), c.double()).square()
    assert torch.equal(idx, ref.argmin(1))
    assert d.double().tolist() == pytest.approx(ref.min(1).values.tolist(), abs=1e-4)


@pytest.mark.parametrize("k", [1, 2, 100, 5000])
def test_row_min_gives_min_values_and_first_positions_also_with_ties(k):
    """The CPU index-sum path of row_min (and the fallback for tied minima) is torch's min(1)."""
    g = torch.Generator().manual_seed(k)
    d = torch.rand(300, k, generator=g)
    if k > 1:
        d[::3, k // 2] = d[::3].amin(1)  # a tie with an existing minimum in every third row
        d[5] = 0.25  # a whole row tied
    ref = d.clone().min(1)
    v, idx = km.row_min(d.clone())
    assert torch.equal(v, ref.values) and torch.equal(idx, ref.indices)


def test_kmeans_reaches_scikit_learn_inertia():
    g = torch.Generator().manual_seed(3)
    x = (
        torch.randn(4000, 32, generator=g)
        + 4 * torch.randn(25, 32, generator=g)[torch.randint(0, 25, (4000,), generator=g)]
    )
    ours, theirs = [], []
    for seed in range(6):  # both land in local minima on some seeds: compare the averages
        centres, assign = km.kmeans(x, 25, seed=seed, iters=100)
        ours.append(float((x - centres[assign]).square().sum()))
        theirs.append(KMeans(n_clusters=25, random_state=seed).fit(x.numpy()).inertia_)
    assert np.mean(ours) <= 1.02 * np.mean(theirs)


def test_lloyd_keeps_converged_centres_and_improves_bad_ones():
    x, label = _blobs(centres=4)
    means = torch.stack([x[label == j].mean(0) for j in range(4)])
    centres, assign = km.lloyd(x, means.clone(), iters=5)
    assert torch.allclose(centres, means, atol=1e-5) and torch.equal(assign, label)
    bad = x[[0, 1, 2, 3]]  # four seeds inside one blob
    centres, _ = km.lloyd(x, bad.clone(), iters=50)
    inertia = km.assign_to_nearest(km.augment_rows(x), centres)[0].sum()
    assert inertia < km.assign_to_nearest(km.augment_rows(x), bad)[0].sum() / 2


def test_kmeans_is_seeded():
    x = torch.randn(800, 6, generator=torch.Generator().manual_seed(4))
    a = km.kmeans_picks(x, 12, seed=7)
    assert torch.equal(a, km.kmeans_picks(x, 12, seed=7))
    assert not torch.equal(a, km.kmeans_picks(x, 12, seed=8))


def test_picks_are_distinct_when_points_repeat_and_when_k_equals_n():
    x = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]).repeat(20, 1)  # 3 distinct points, 60 rows
    picks = km.kmeans_picks(x, 8, seed=0)
    assert len(set(picks.tolist())) == 8
    assert sorted(km.kmeans_picks(x[:5], 5, seed=0).tolist()) == [0, 1, 2, 3, 4]
    assert sorted(km.kmeans_picks(x[:5], 9, seed=0).tolist()) == [0, 1, 2, 3, 4]  # k > n: all of them


def test_picks_are_the_members_nearest_each_centre():
    x, label = _blobs(centres=6)
    picks = km.kmeans_picks(x, 6, seed=0)
    assert sorted(label[picks].tolist()) == list(range(6))
    for p in picks.tolist():
        members = x[label == label[p]]
        centre = members.mean(0)
        assert (x[p] - centre).norm() <= (members - centre).norm(dim=1).min() + 1e-5


def test_kmeans_runs_in_float32_under_autocast():
    x = torch.randn(600, 10, generator=torch.Generator().manual_seed(5))
    ref = km.kmeans_picks(x, 9, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(km.kmeans_picks(x, 9, seed=0), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_seeding_equals_eager_seeding():
    x = torch.randn(5000, 64, generator=torch.Generator().manual_seed(0)).cuda()
    for k in (65, 100, 257):
        eager = km.kmeans_plus_plus(x, k, torch.Generator(device="cuda").manual_seed(k), use_graph=False)
        graph = km.kmeans_plus_plus(x, k, torch.Generator(device="cuda").manual_seed(k), use_graph=True)
        assert torch.equal(eager, graph)


def test_sq_dists_match_brute_force_in_chunks_and_never_go_negative():
    from autoal.distances import min_sq_dists, sq_dists

    g = torch.Generator().manual_seed(6)
    x, c = torch.randn(300, 5, generator=g) + 50, torch.randn(7, 5, generator=g) + 50  # far from 0
    ref = torch.cdist(x.double(), c.double()).square()
    d = sq_dists(x, c, chunk=64)
    assert d.shape == (300, 7) and (d >= 0).all()
    assert torch.allclose(d.double(), ref, atol=2e-2)
    assert min_sq_dists(x, c, chunk=64).double().tolist() == pytest.approx(ref.min(1).values.tolist(), abs=2e-2)
    assert sq_dists(x[:0], c).shape == (0, 7)
    assert sq_dists(x, x[:3])[[0, 1, 2], [0, 1, 2]].abs().max() < 1e-2  # a point to itself


def test_nearest_rows_match_brute_force_in_tiles():
    from autoal.distances import nearest_rows

    x = torch.randn(130, 5, generator=torch.Generator().manual_seed(4))
    ref = torch.cdist(x, x).topk(4, dim=1, largest=False).indices
    got = nearest_rows(x, 4, chunk=32)  # rows and columns in tiles of 32
    assert got.shape == (130, 4) and got[:, 0].tolist() == list(range(130))
    assert got.tolist() == ref.tolist() and nearest_rows(x, 4).tolist() == ref.tolist()
    assert nearest_rows(x[:3], 10).shape == (3, 3)
