"""Monte-Carlo dropout (autoal/mc.py, DESIGN.md §3.1.1): the summary equals the moments of the
explicit samples, does not depend on chunking or sharding, and — on a trained model — gives
BALD, MeanSTD and VarRatio rankings that measure uncertainty and are stable across MC seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from autoal.cache import compute_cache
from autoal.config import ALConfig, RunConfig
from autoal.data import DataSpec, load_dataset
from autoal.errors import ConfigError
from autoal.mc import MCSummary, class_probabilities, dropout_keep_mask, masked_head_weights, mc_dropout_summary
from autoal.models import build_model
from autoal.selection import top_n
from autoal.strategies import scores
from autoal.training import TrainConfig, train_model

FIELDS = ("mean_probs", "std_probs", "mean_entropy", "modal_fraction")


def _head(seed=0, n=300, d=16, c=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(c, d, generator=g), torch.randn(c, generator=g)


def _close(a: MCSummary, b: MCSummary, atol=1e-5):
    assert a.samples == b.samples
    for f in FIELDS:
        assert torch.allclose(getattr(a, f), getattr(b, f), atol=atol), f


def test_consistent_summary_equals_the_moments_of_the_explicit_samples():
    emb, w, b = _head()
    got = mc_dropout_summary(w, b, emb, 50, 0.3, torch.Generator().manual_seed(3))
    keep, scale = dropout_keep_mask((50, emb.shape[1]), 0.3, torch.Generator().manual_seed(3), emb.device)
    samples = torch.stack([class_probabilities(F.linear(emb * keep[t], w * scale, b)) for t in range(50)])
    _close(got, MCSummary.from_samples(samples))
    # by hand on the samples
    assert torch.allclose(got.mean_probs, samples.mean(0), atol=1e-6)
    assert torch.allclose(got.std_probs, samples.std(0, unbiased=False), atol=1e-6)
    votes = F.one_hot(samples.argmax(-1), 5).sum(0).max(-1).values
    assert torch.equal(got.modal_fraction, votes / 50)


def test_masked_head_weights_hold_every_pass_and_the_bias():
    emb, w, b = _head(seed=4, n=30, d=12, c=3)
    keep, scale = dropout_keep_mask((7, 12), 0.4, torch.Generator().manual_seed(0), emb.device)
    w_all = masked_head_weights(w, b, keep, scale)
    assert w_all.shape == (13, 3 * 7)
    z = (torch.cat([emb, torch.ones(30, 1)], 1) @ w_all).view(30, 3, 7)  # class-major: column c·T + t
    for t in range(7):
        assert torch.allclose(z[:, :, t], F.linear(emb * keep[t], w * scale, b), atol=1e-5)


def _reference_summary(emb, w, b, t, p, seed):
    """The T passes done one by one in float64, and their moments by the textbook formulas."""
    keep, scale = dropout_keep_mask((t, emb.shape[1]), p, torch.Generator().manual_seed(seed), emb.device)
    logits = torch.stack([F.linear(emb.double() * keep[i], w.double() * scale, b.double()) for i in range(t)])
    probs = torch.softmax(logits, -1)  # (T, N, C)
    votes = F.one_hot(probs.argmax(-1), w.shape[0]).sum(0).max(-1).values
    return (probs.mean(0), probs.std(0, unbiased=False), (-torch.special.xlogy(probs, probs).sum(-1)).mean(0), votes)


@pytest.mark.parametrize(
    "n,d,c,t,gain,chunk",
    [
        (1, 3, 2, 1, 1.0, None),  # one row, one pass
        (97, 16, 7, 33, 1.0, 500),  # chunks of 2 rows, the last one partial
        (200, 64, 10, 500, 1.0, None),  # the default T at the benchmark's width
        (150, 20, 4, 64, 40.0, 4096),  # saturated softmax: probabilities underflow to 0, entropies ≈ 0
    ],
)
def test_the_fast_summary_equals_the_float64_reference(n, d, c, t, gain, chunk):
    """The chunked one-product path (scratch reuse, sign votes, log-sum-exp entropy, norm std)
    computes the same moments as the passes done one by one, to float32 rounding."""
    emb, w, b = _head(seed=n + t, n=n, d=d, c=c)
    got = mc_dropout_summary(w * gain, b, emb, t, 0.3, torch.Generator().manual_seed(9), chunk_elements=chunk)
    mean, std, ent, modal = _reference_summary(emb, w * gain, b, t, 0.3, 9)
    assert torch.isfinite(got.mean_entropy).all() and torch.isfinite(got.std_probs).all()
    assert torch.allclose(got.mean_probs.double(), mean, atol=2e-6)
    assert torch.allclose(got.std_probs.double(), std, atol=2e-6)
    assert torch.allclose(got.mean_entropy.double(), ent, atol=1e-5)
    assert torch.equal((got.modal_fraction * t).round().long(), modal)  # the same argmax votes
    assert got.samples == t and len(got) == n


def test_an_empty_pool_gives_an_empty_summary():
    _, w, b = _head()
    s = mc_dropout_summary(w, b, torch.zeros(0, w.shape[1]), 20, 0.3, torch.Generator().manual_seed(0))
    assert len(s) == 0 and s.mean_probs.shape == (0, w.shape[0]) and s.samples == 20


def test_summary_does_not_depend_on_chunks_or_shards():
    emb, w, b = _head(seed=1, n=257)
    whole = mc_dropout_summary(w, b, emb, 40, 0.3, torch.Generator().manual_seed(7))
    tiny_chunks = mc_dropout_summary(w, b, emb, 40, 0.3, torch.Generator().manual_seed(7), chunk_elements=600)
    _close(whole, tiny_chunks, atol=1e-6)
    # consistent masks depend on the seed only: shards scored apart and joined equal the whole
    parts = [
        mc_dropout_summary(w, b, emb[a:z], 40, 0.3, torch.Generator().manual_seed(7)) for a, z in ((0, 100), (100, 257))
    ]
    _close(whole, MCSummary.concat(parts), atol=1e-6)
    sub = whole.subset(torch.tensor([3, 5]))
    assert torch.equal(sub.mean_entropy, whole.mean_entropy[[3, 5]]) and len(sub) == 2


def test_consistent_and_independent_masks_estimate_the_same_moments():
    emb, w, b = _head(seed=2, n=60)
    a = mc_dropout_summary(w, b, emb, 6000, 0.3, torch.Generator().manual_seed(0), masks="consistent")
    c = mc_dropout_summary(w, b, emb, 6000, 0.3, torch.Generator().manual_seed(1), masks="independent")
    for f in FIELDS:
        assert (getattr(a, f) - getattr(c, f)).abs().mean() < 0.02, f


def test_without_dropout_every_pass_is_the_plain_head_and_bad_input_is_refused():
    emb, w, b = _head(seed=3, n=20)
    s = mc_dropout_summary(w, b, emb, 7, 0.0)
    assert torch.allclose(s.mean_probs, torch.softmax(F.linear(emb, w, b), -1), atol=1e-6)
    assert torch.all(s.std_probs == 0) and torch.all(s.modal_fraction == 1) and torch.all(scores.bald(s) == 0)
    with pytest.raises(ValueError, match="masks"):
        mc_dropout_summary(w, b, emb, 5, 0.3, masks="shared")
    with pytest.raises(ValueError, match="at least one sample"):
        mc_dropout_summary(w, b, emb, 0, 0.3)
    with pytest.raises(ValueError, match="different sample counts"):
        MCSummary.concat([s, mc_dropout_summary(w, b, emb, 8, 0.0)])
    with pytest.raises(
        ConfigError, match="al.mc_masks: unknown value 'shared'; valid choices: consistent, independent"
    ):
        RunConfig.from_dict({"al": {"mc_masks": "shared"}})


def test_the_embedding_is_normalized_per_sample_and_the_old_one_stays_reachable():
    x = torch.randn(6, 1, 8, 8)
    on = build_model("small_cnn", 1, 10, 8, embedding_norm=True).eval()
    off = build_model("small_cnn", 1, 10, 8, embedding_norm=False).eval()
    off.load_state_dict(on.state_dict())
    e_on, e_off = on.embed(x), off.embed(x)
    assert torch.allclose(e_on.mean(1), torch.zeros(6), atol=1e-5)
    assert torch.allclose(e_on, F.layer_norm(e_off, e_off.shape[-1:]), atol=1e-5)
    assert on.spec["embedding_norm"] is True and off.spec["embedding_norm"] is False
    assert torch.allclose(on(x), on.fc(e_on), atol=1e-5)  # eval-mode head sees the normalized embedding


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataSpec(name="digits"))


def _trained(digits, size: int, seed: int, embedding_norm: bool):
    torch.manual_seed(seed)
    model = build_model("small_cnn", 1, 10, 8, dropout=0.3, embedding_norm=embedding_norm)
    labeled = np.sort(np.random.default_rng(seed).permutation(len(digits.y_train))[:size])
    train_model(model, digits, labeled, TrainConfig(epochs=50), device=torch.device("cpu"), seed=seed)
    return model, np.setdiff1d(np.arange(len(digits.y_train)), labeled)


@pytest.mark.parametrize("size", [20, 70])
def test_mc_candidates_pick_the_same_samples_across_mc_seeds_at_the_default_T(digits, size):
    """Issue 11's target: two MC seeds share at least half of the top b at the default T."""
    model, pool = _trained(digits, size, seed=0, embedding_norm=True)
    t, masks = ALConfig().mc_samples, ALConfig().mc_masks
    a, b = (compute_cache(model, digits, pool, mc_samples=t, seed=s, mc_masks=masks) for s in (1, 2))
    for name in ("bald", "mean_std", "var_ratio"):
        fn = getattr(scores, name)
        pa = top_n(fn(a.mc), 10, np.random.default_rng(0))
        pb = top_n(fn(b.mc), 10, np.random.default_rng(0))
        assert len(set(pa.tolist()) & set(pb.tolist())) >= 5, name


def test_normalized_embedding_makes_bald_follow_uncertainty_not_the_activation_norm(digits):
    """DESIGN.md §3.1.1: un-normalized, BALD tracks the embedding norm (which falls with
    uncertainty in this BatchNorm CNN) and ranks confident samples first; normalized, it ranks
    like the entropy of the prediction."""
    rho = {}
    for norm in (False, True):
        model, pool = _trained(digits, 20, seed=0, embedding_norm=norm)
        cache = compute_cache(model, digits, pool, mc_samples=500, seed=1)
        rho[norm] = spearmanr(scores.bald(cache.mc).numpy(), scores.entropy(cache.probs).numpy())[0]
    assert rho[False] < 0.0 < 0.8 < rho[True]


def test_the_summary_stays_float32_under_autocast():
    emb, w, b = _head(seed=5, n=40)
    plain = mc_dropout_summary(w, b, emb, 30, 0.3, torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = mc_dropout_summary(w, b, emb, 30, 0.3, torch.Generator().manual_seed(2))
    _close(plain, cast, atol=0)
