"""Monte-Carlo dropout over cached embeddings (DESIGN.md §3.1.1): T head passes with dropout
active give T samples p_t(x) of the class probabilities; what BALD, VarRatio and MeanSTD need
from them is kept as per-sample moments (:class:`MCSummary`), so memory stays O(N·C) whatever T.

Two ways to draw the dropout masks:

- ``consistent`` (default): the same T masks for every sample — T fixed sub-networks of the
  head, evaluated on the whole pool ("consistent MC dropout", Kirsch, van Amersfoort & Gal,
  BatchBALD, NeurIPS 2019). Each sample's estimate is as unbiased as with fresh masks, but the
  errors of different samples are correlated (common random numbers), so the *ranking* of the
  pool, which is all a query uses, varies much less from one MC seed to the next. It is also
  cheaper: a pass is one matrix product with T masked copies of the head's weights, and the
  masks do not depend on how the pool is split into shards or chunks.
- ``independent``: a fresh mask for every sample and pass (what a dropout layer in train mode
  does; the released AutoAL code and the first versions of autoal).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MASK_MODES = ("consistent", "independent")
#: Probabilities per chunk of rows (N_chunk · T · C) and CPU thread. On one thread (T = 500,
#: N = 20,000) chunks of 2¹⁸ to 2²¹ ran alike and 2²² 1.45× slower (a thread's share of the two
#: scratch tensors should stay near its core's cache); larger chunks mean fewer parallel regions,
#: which decides the time when the cores are oversubscribed (two threads at a load of 7 on two
#: cores: 2¹⁸ per chunk took twice as long as 2²¹).
CHUNK_ELEMENTS_CPU = 1 << 20
#: On a GPU, large chunks: fewer kernel launches.
CHUNK_ELEMENTS_CUDA = 1 << 24


@dataclass
class MCSummary:
    """Per-sample moments of T Monte-Carlo samples p_t of the class probabilities.

    mean_probs: (N, C) mean_t p_t; std_probs: (N, C) population std over t of p_t;
    mean_entropy: (N,) mean_t H(p_t); modal_fraction: (N,) the share of the T passes that
    predict the most frequently predicted class; samples: T."""

    mean_probs: torch.Tensor
    std_probs: torch.Tensor
    mean_entropy: torch.Tensor
    modal_fraction: torch.Tensor
    samples: int

    def __len__(self) -> int:
        return int(self.mean_probs.shape[0])

    def subset(self, rows: torch.Tensor) -> "MCSummary":
        return MCSummary(
            self.mean_probs[rows],
            self.std_probs[rows],
            self.mean_entropy[rows],
            self.modal_fraction[rows],
            self.samples,
        )

    def to(self, device: torch.device | str) -> "MCSummary":
        return MCSummary(
            self.mean_probs.to(device),
            self.std_probs.to(device),
            self.mean_entropy.to(device),
            self.modal_fraction.to(device),
            self.samples,
        )

    @staticmethod
    def concat(parts: list["MCSummary"]) -> "MCSummary":
        if len({p.samples for p in parts}) != 1:
            raise ValueError(f"cannot join MC summaries of different sample counts {[p.samples for p in parts]}")
        return MCSummary(
            torch.cat([p.mean_probs for p in parts]),
            torch.cat([p.std_probs for p in parts]),
            torch.cat([p.mean_entropy for p in parts]),
            torch.cat([p.modal_fraction for p in parts]),
            parts[0].samples,
        )

    @staticmethod
    def from_samples(probs: torch.Tensor) -> "MCSummary":
        """The summary of explicit samples ``probs`` (T, N, C)."""
        return _summarize(probs.transpose(0, 1))


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(p, p).sum(-1)


def _summarize(p: torch.Tensor) -> MCSummary:
    """Moments of ``p`` (N, T, C), the T samples of each row next to each other."""
    n, t, c = p.shape
    mean = p.mean(1)
    std = (p - mean.unsqueeze(1)).square_().mean(1).sqrt_()
    votes = torch.zeros(n, c, device=p.device).scatter_add_(1, p.argmax(-1), torch.ones(n, t, device=p.device))
    return MCSummary(
        mean_probs=mean,
        std_probs=std,
        mean_entropy=_entropy(p).mean(1),
        modal_fraction=votes.max(1).values / t,
        samples=t,
    )


class _ChunkBuffers:
    """Scratch tensors of one chunk of rows, allocated once per summary: reusing them instead of
    allocating per chunk and per operation saves more than the arithmetic of the moments costs on
    CPU (fresh megabyte-sized tensors are fresh pages, faulted in at every use)."""

    def __init__(self, rows: int, c: int, t: int, device: torch.device) -> None:
        self.z = torch.empty(rows, c, t, device=device)
        self.e = torch.empty(rows, c, t, device=device)
        self.zmax = torch.empty(rows, 1, t, device=device)
        self.s = torch.empty(rows, 1, t, device=device)
        self.votes = torch.empty(rows, c, device=device)


def _moments_of_logits(
    z: torch.Tensor,
    e: torch.Tensor,
    zmax: torch.Tensor,
    s: torch.Tensor,
    votes: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    entropy: torch.Tensor,
    modal: torch.Tensor,
) -> None:
    """The moments of the softmax of logits ``z`` laid out (R, C, T), written into ``mean``,
    ``std`` (R, C), ``entropy`` and ``modal`` (R,); ``z``, ``e``, ``zmax``, ``s``, ``votes`` are
    scratch of matching shapes (``z`` is consumed).

    The T passes of a class are contiguous, so every reduction over the short class dimension
    vectorizes along T (on CPU, reducing over an innermost dimension of 10 classes is 3-10×
    slower). Every step is one elementwise or reduction kernel on the scratch, none allocates
    a chunk-sized tensor:

    - argmax votes: with zc = z − max z ≤ 0 (the max is exactly 0), sign(zc) is 0 on the argmax
      and −1 elsewhere, so the votes of class c are T + Σ_t sign(zc_ct) (a float sum; counting a
      bool tensor is 7× slower on CPU);
    - entropy from the log-sum-exp: H_t = log s_t − Σ_c p_ct zc_ct with s_t = Σ_c exp(zc_ct), so
      no logarithm is taken per class, and its mean over t is one sum over (c, t);
    - std: the norm over t of p − mean (two passes, as exact as the textbook formula)."""
    t = z.shape[2]
    torch.amax(z, 1, keepdim=True, out=zmax)
    zc = z.sub_(zmax)
    torch.sum(torch.sign(zc, out=e), 2, out=votes)  # votes − T
    torch.exp(zc, out=e)
    torch.sum(e, 1, keepdim=True, out=s)
    p = e.mul_(s.reciprocal_())  # s ≥ 1: the max term is exp(0)
    plogp_shift = zc.mul_(p).sum((1, 2))  # Σ_t Σ_c p_ct zc_ct
    torch.sub(s.log_().sum((1, 2)).neg_(), plogp_shift, out=entropy).div_(t)  # log s = −log(1/s)
    torch.mean(p, 2, out=mean)
    torch.linalg.vector_norm(p.sub_(mean.unsqueeze(2)), dim=2, out=std).div_(t**0.5)
    torch.amax(votes, 1, out=modal).add_(t).clamp_(0, t).div_(t)


def dropout_keep_mask(
    shape: torch.Size | tuple[int, ...], p: float, generator: torch.Generator | None, device: torch.device
) -> tuple[torch.Tensor, float]:
    """An inverted-dropout keep mask (Srivastava et al. 2014) and its rescaling 1/q, where q is
    the keep probability 1 − p rounded to a multiple of 2⁻¹⁶.

    Each element compares one 16-bit lane of a 64-bit random word against a threshold, so a mask
    of n elements costs n/4 random draws instead of n float draws (4-5× faster on CPU)."""
    n = 1
    for s in shape:
        n *= int(s)
    keep_units = max(1, min(65536, round((1.0 - p) * 65536)))
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None, generator=generator)
    lanes = words.view(torch.int16)[:n].view(shape)  # uniform on [−32768, 32767]
    return lanes < keep_units - 32768, 65536.0 / keep_units


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last (class) dimension, as exp(z − max z) / Σ exp(z − max z).

    Same values as ``torch.softmax`` (to float rounding), written out because torch's CPU kernel
    is slow when the class dimension is short: 21 ms against 2.8 ms for 10 × 20,000 × 10 on two
    cores, which made the MC samples cost more than the head passes that produce them."""
    e = (logits - logits.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


@torch.no_grad()
def mc_dropout_summary(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    emb: torch.Tensor,
    samples: int,
    p: float,
    generator: torch.Generator | None = None,
    masks: str = "consistent",
    chunk_elements: int | None = None,
) -> MCSummary:
    """Summary of ``samples`` dropout passes of the linear head (``weight`` (C, D), ``bias``)
    over the embeddings ``emb`` (N, D), dropout rate ``p``; ``generator`` lives on emb's device.

    ``consistent`` masks: T masks of shape (D,) drawn once (:func:`masked_head_weights`); rows
    are processed in chunks of at most ``chunk_elements`` probabilities (N_chunk · T · C; default
    ``CHUNK_ELEMENTS_CPU`` per thread, or ``CHUNK_ELEMENTS_CUDA``), one matrix product per chunk
    into reused scratch.
    ``independent``: a fresh (N, D) mask per pass."""
    if masks not in MASK_MODES:
        raise ValueError(f"MC dropout masks must be one of {MASK_MODES}; got {masks!r}")
    emb = emb.float()
    w = weight.float()
    n, d = emb.shape
    c = w.shape[0]
    t = int(samples)
    if t < 1:
        raise ValueError(f"MC dropout needs at least one sample; got {samples}")
    b = torch.zeros(c, device=emb.device) if bias is None else bias.float()
    if p <= 0:  # no dropout: every pass is the plain head
        probs = class_probabilities(F.linear(emb, w, b))
        return MCSummary(probs, torch.zeros_like(probs), _entropy(probs), torch.ones(n, device=emb.device), t)
    if masks == "independent":
        draws = []
        for _ in range(t):
            keep, scale = dropout_keep_mask((n, d), p, generator, emb.device)
            draws.append(class_probabilities(F.linear(emb * keep, w * scale, b)))
        return _summarize(torch.stack(draws, 1))
    keep, scale = dropout_keep_mask((t, d), p, generator, emb.device)
    w_all = masked_head_weights(w, b, keep, scale)
    if chunk_elements is None:
        chunk_elements = CHUNK_ELEMENTS_CUDA if emb.is_cuda else CHUNK_ELEMENTS_CPU * torch.get_num_threads()
    rows = max(1, min(n, chunk_elements // (t * c)))
    out = MCSummary(emb.new_empty(n, c), emb.new_empty(n, c), emb.new_empty(n), emb.new_empty(n), t)
    if n == 0:
        return out
    emb1 = torch.cat([emb, emb.new_ones(n, 1)], 1)  # the bias enters the product as a column of ones
    buf = _ChunkBuffers(rows, c, t, emb.device)
    with torch.autocast(emb.device.type, enabled=False):  # float32 logits into float32 scratch
        for start in range(0, n, rows):
            end = min(n, start + rows)
            k = end - start
            z = torch.mm(emb1[start:end], w_all, out=buf.z[:k].view(k, c * t)).view(k, c, t)
            _moments_of_logits(
                z,
                buf.e[:k],
                buf.zmax[:k],
                buf.s[:k],
                buf.votes[:k],
                out.mean_probs[start:end],
                out.std_probs[start:end],
                out.mean_entropy[start:end],
                out.modal_fraction[start:end],
            )
    return out


def masked_head_weights(weight: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """The T dropout sub-networks of a linear head as one (D + 1, C·T) matrix: column c·T + t is
    class c's weights under the keep mask ``keep[t]`` (T, D), times the rescaling ``scale``, and
    the last row is the bias. Built once per summary: a dropout pass is z_t = W (m_t ⊙ e)/q + b
    = (W ⊙ m_t/q) e + b, so the T passes over a chunk of embeddings (with a column of ones
    appended) are one matrix product, laid out class-major (C, T) per row."""
    c, d = weight.shape
    t = keep.shape[0]
    w_all = torch.empty(d + 1, c, t, device=weight.device)
    torch.mul(keep.T.unsqueeze(1), (weight * scale).T.unsqueeze(2), out=w_all[:d])
    w_all[d] = bias.unsqueeze(1)
    return w_all.view(d + 1, c * t)
