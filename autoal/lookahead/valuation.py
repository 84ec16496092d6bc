"""The look-ahead valuation of query strategies on the labeled set (DESIGN.md §3.9), as pure
functions of tensors.

What AL is for is the accuracy of the model after labeling. The look-ahead estimates it on L
itself: L is split into A (plays the labeled set; FitNet is trained on it) and V (plays the
pool; FitNet has never seen it). V is re-partitioned R times into a simulated pool P and a
held-out set H. For each *arm* (a candidate strategy's scores on V, or a mixture of them) the
arm's top-b' of P are "labeled", the classifier head is refitted on A ∪ picks, and the held-out
cross-entropy on H is compared with the head refitted on A alone:

    gain(arm, r) = CE_H(head fitted on A) − CE_H(head fitted on A ∪ top-b'(arm, P_r)).

The inner model is the head — multinomial logistic regression on FitNet's (frozen) embeddings,
started at FitNet's head and pulled towards it by an L2 term — so all arms × partitions are
fitted together by one batched gradient descent in milliseconds: the network's features are
held fixed, the question asked is which samples move the decision boundary the right way. The
idea of valuing a query by the error reduction it causes goes back to Roy & McCallum (ICML
2001); simulating the AL step on a split of L is how SelectAL (Hacohen & Weinshall, NeurIPS
2023) finds the budget regime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autoal.mc import class_probabilities


@dataclass
class LookaheadResult:
    """Per arm and partition: the held-out cross-entropy gain and accuracy gain (in [−1, 1])."""

    gain_ce: torch.Tensor  # (K, R)
    gain_acc: torch.Tensor  # (K, R)
    base_ce: torch.Tensor  # (R,) CE on H of the head fitted on A alone
    picks: int  # b'
    distinctness: float  # 1 − mean share of picks two arms have in common (0: all arms alike)


def partition_masks(n: int, parts: int, pool_fraction: float, rng: np.random.Generator) -> torch.Tensor:
    """(R, n) booleans: True = the row is in the simulated pool P_r, False = in H_r. Each
    partition puts round(pool_fraction · n) rows (at least 1, at most n − 1) into P."""
    m = int(min(max(round(pool_fraction * n), 1), n - 1))
    out = torch.zeros(parts, n, dtype=torch.bool)
    for r in range(parts):
        out[r, torch.from_numpy(rng.permutation(n)[:m])] = True
    return out


def top_in_mask(scores: torch.Tensor, mask: torch.Tensor, k: int, tie_break: torch.Tensor) -> torch.Tensor:
    """(R, n) booleans: per partition r, the ``k`` highest ``scores`` among rows where ``mask[r]``
    (ties broken by the fixed random ``tie_break`` values)."""
    s = scores.float().unsqueeze(0) + 1e-6 * tie_break.unsqueeze(0)
    s = torch.where(mask, s, torch.full_like(s, -float("inf")))
    idx = s.topk(k, dim=1).indices
    return torch.zeros_like(mask).scatter_(1, idx, True)


def fit_heads(
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    w0: torch.Tensor,
    b0: torch.Tensor,
    *,
    steps: int = 50,
    l2: float = 1e-2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched multinomial logistic regression: for every row p of ``weights`` (P, n), minimize
    Σ_i w_pi CE(x_i, y_i) / Σ_i w_pi + l2/2 · ||(W, b) − (W0, b0)||² over the head (W, b), from
    (W0, b0), by ``steps`` of Nesterov-accelerated gradient descent with step 1/L, where
    L = max_i ||[x_i, 1]||² / 2 + l2 bounds the curvature. Returns W (P, C, D), b (P, C)."""
    p_count = weights.shape[0]
    c, d = w0.shape
    x = x.float()
    onehot = torch.nn.functional.one_hot(y, c).float()
    wn = weights.float() / weights.float().sum(1, keepdim=True).clamp_min(1e-12)  # (P, n)
    lip = 0.5 * float((x.square().sum(1) + 1).max()) + l2
    lr = 1.0 / lip
    W = w0.float().expand(p_count, c, d).clone()
    b = b0.float().expand(p_count, c).clone()
    W_prev, b_prev = W.clone(), b.clone()
    for step in range(1, int(steps) + 1):
        mom = (step - 1) / (step + 2)
        Wl = W + mom * (W - W_prev)
        bl = b + mom * (b - b_prev)
        logits = torch.einsum("nd,pcd->pnc", x, Wl) + bl.unsqueeze(1)
        prob = class_probabilities(logits)  # written-out softmax: torch's is slow over 10 classes on CPU
        g = (prob - onehot.unsqueeze(0)) * wn.unsqueeze(2)  # (P, n, C)
        gW = torch.einsum("pnc,nd->pcd", g, x) + l2 * (Wl - w0)
        gb = g.sum(1) + l2 * (bl - b0)
        W_prev, b_prev = W, b
        W, b = Wl - lr * gW, bl - lr * gb
    return W, b


def held_out(
    x: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy of each head p (W[p], b[p]) over the rows where mask[p]."""
    logits = torch.einsum("nd,pcd->pnc", x.float(), W) + b.unsqueeze(1)
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y.expand(W.shape[0], -1), reduction="none")
    acc = (logits.argmax(-1) == y.unsqueeze(0)).float()
    m = mask.float()
    cnt = m.sum(1).clamp_min(1)
    return (ce * m).sum(1) / cnt, (acc * m).sum(1) / cnt


def lookahead(
    e_a: torch.Tensor,
    y_a: torch.Tensor,
    e_v: torch.Tensor,
    y_v: torch.Tensor,
    w0: torch.Tensor,
    b0: torch.Tensor,
    arm_scores: torch.Tensor,
    picks: int,
    *,
    parts: int = 8,
    pool_fraction: float = 0.5,
    steps: int = 50,
    l2: float = 1e-2,
    rng: np.random.Generator,
) -> LookaheadResult:
    """The look-ahead gains (module docstring) of K arms, ``arm_scores`` (K, |V|), over ``parts``
    random partitions of V; each arm labels its top ``picks`` of the simulated pool."""
    k, nv = arm_scores.shape
    na = e_a.shape[0]
    pool = partition_masks(nv, parts, pool_fraction, rng)  # (R, nV)
    picks = int(min(max(picks, 1), int(pool.sum(1).min())))
    tie = torch.from_numpy(rng.random(nv)).float()
    chosen = torch.stack([top_in_mask(arm_scores[j], pool, picks, tie) for j in range(k)])  # (K, R, nV)
    x = torch.cat([e_a, e_v]).float()
    y = torch.cat([y_a, y_v])
    # problem rows: R base problems (A only), then K·R arm problems (A ∪ picks)
    base_w = torch.cat([torch.ones(parts, na), torch.zeros(parts, nv)], 1)
    arm_w = torch.cat([torch.ones(k * parts, na), chosen.reshape(k * parts, nv).float()], 1)
    W, b = fit_heads(x, y, torch.cat([base_w, arm_w]), w0, b0, steps=steps, l2=l2)
    held = torch.cat([torch.zeros(parts, na, dtype=torch.bool), ~pool], 1)  # H_r
    held_all = torch.cat([held, held.repeat(k, 1)])
    ce, acc = held_out(x, y, W, b, held_all)
    base_ce, base_acc = ce[:parts], acc[:parts]
    arm_ce, arm_acc = ce[parts:].view(k, parts), acc[parts:].view(k, parts)
    return LookaheadResult(
        gain_ce=base_ce.unsqueeze(0) - arm_ce,
        gain_acc=arm_acc - base_acc.unsqueeze(0),
        base_ce=base_ce,
        picks=picks,
        distinctness=arm_distinctness(chosen),
    )


def arm_distinctness(chosen: torch.Tensor) -> float:
    """1 − the mean, over pairs of arms and partitions, of the share of picks two arms have in
    common (``chosen`` (K, R, n) booleans with the same number of picks per row). When every arm
    picks nearly the same samples — a simulated pool barely larger than the picks — the gains
    differ by noise only, and this is near 0."""
    k = chosen.shape[0]
    if k < 2:
        return 0.0
    c = chosen.float()
    inter = torch.einsum("irn,jrn->ijr", c, c)  # (K, K, R) shared picks
    per = c.sum(2).clamp_min(1)  # (K, R)
    share = inter / per.unsqueeze(1)
    off = ~torch.eye(k, dtype=torch.bool)
    return float(1.0 - share[off].mean())
