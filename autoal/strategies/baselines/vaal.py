"""VAAL: Variational Adversarial Active Learning (Sinha, Ebrahimi, Darrell, ICCV 2019)."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autoal.selection import top_n
from autoal.strategies.base import QueryContext, Strategy
from autoal.strategies.baselines._common import cpu_state, require_ctx
from autoal.strategies.registry import register_strategy


class VAE(nn.Module):
    """A small convolutional VAE for any image size: up to three stride-2 4×4 convolutions
    (BatchNorm, ReLU; channels width, 2·width, 4·width) while the side stays even and ≥ 8, a
    linear map to μ and log σ², and the mirror image with transposed convolutions back to the
    input size. (The paper's VAE is the same design, wider: 128…1024 channels.)"""

    def __init__(self, in_channels: int, image_size: int, latent_dim: int = 32, width: int = 32) -> None:
        super().__init__()
        side, chans = image_size, []
        while side >= 8 and side % 2 == 0 and len(chans) < 3:
            chans.append(width * 2 ** len(chans))
            side //= 2
        self.in_channels, self.image_size, self.side = in_channels, image_size, side
        enc: list[nn.Module] = []
        cin = in_channels
        for c in chans:
            enc += [nn.Conv2d(cin, c, 4, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            cin = c
        self.encoder = nn.Sequential(*enc)
        self.top = cin
        flat = cin * side * side
        self.fc_mu = nn.Linear(flat, latent_dim)
        self.fc_logvar = nn.Linear(flat, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, flat)
        dec: list[nn.Module] = []
        for i in reversed(range(len(chans))):
            cout = chans[i - 1] if i > 0 else width
            dec += [
                nn.ConvTranspose2d(chans[i], cout, 4, 2, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        self.decoder = nn.Sequential(*dec)
        self.out = nn.Conv2d(width if chans else in_channels, in_channels, 3, padding=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.flatten(self.encoder(x), 1)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-20.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc_dec(z).view(-1, self.top, self.side, self.side)
        return self.out(self.decoder(h))

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


class Discriminator(nn.Module):
    """MLP on the latent mean: latent → hidden → hidden → 1 logit (of "labeled")."""

    def __init__(self, latent_dim: int = 32, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)


def vae_loss(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float) -> torch.Tensor:
    """The negative ELBO of a unit-variance Gaussian decoder, per sample: squared
    reconstruction error summed over pixels + β·KL(q(z|x) ‖ N(0, I)) summed over latent
    dimensions; both averaged over the batch."""
    kld = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
    rec = F.mse_loss(recon, x, reduction="none").flatten(1).sum(1).mean()
    return rec + beta * kld


class _Batches:
    """Endless seeded mini-batches of positions 0..n−1: consecutive slices of fresh random
    permutations (every sample once per pass)."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator) -> None:
        self.n, self.bs, self.gen = n, min(batch_size, n), gen
        self.perm = torch.randperm(n, generator=gen)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.bs > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen)
            self.pos = 0
        out = self.perm[self.pos : self.pos + self.bs]
        self.pos += self.bs
        return out


def train_vaal(
    vae: VAE,
    disc: Discriminator,
    x_lab: torch.Tensor,
    x_unl: torch.Tensor,
    transform,
    *,
    iterations: int,
    batch_size: int,
    lr: float,
    beta: float,
    adversary_weight: float,
    vae_steps: int,
    adv_steps: int,
    device: torch.device,
    seed: int,
    progress: Callable[..., None] | None = None,
) -> dict[str, float]:
    """VAAL's adversarial training (Algorithm 1 of the paper). Per iteration, ``vae_steps``
    VAE updates on fresh labeled and unlabeled batches — reconstruction + β·KL on both, plus
    ``adversary_weight`` × BCE pushing the discriminator to call both "labeled" — then
    ``adv_steps`` discriminator updates (labeled → 1, unlabeled → 0) on the latent means.
    ``x_lab``/``x_unl`` are uint8 image tensors; ``transform`` maps a uint8 batch to floats.
    ``progress(done, total, **losses)`` is called after every iteration."""
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.Generator(device=device).manual_seed(int(seed) + 1)
    lab, unl = _Batches(len(x_lab), batch_size, gen), _Batches(len(x_unl), batch_size, gen)
    opt_v = torch.optim.Adam(vae.parameters(), lr=lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr)
    vae.train()
    disc.train()
    last = {"vae_loss": float("nan"), "disc_loss": float("nan")}

    def batch(src: torch.Tensor, sampler: _Batches) -> torch.Tensor:
        return transform(src[sampler.next().to(src.device)].to(device))

    for it in range(int(iterations)):
        for _ in range(int(vae_steps)):
            xl, xu = batch(x_lab, lab), batch(x_unl, unl)
            rl, mul, lvl = vae(xl, noise)
            ru, muu, lvu = vae(xu, noise)
            unsup = vae_loss(xl, rl, mul, lvl, beta) + vae_loss(xu, ru, muu, lvu, beta)
            dl, du = disc(mul), disc(muu)
            adv = F.binary_cross_entropy_with_logits(dl, torch.ones_like(dl)) + F.binary_cross_entropy_with_logits(
                du, torch.ones_like(du)
            )
            loss = unsup + adversary_weight * adv
            opt_v.zero_grad(set_to_none=True)
            loss.backward()
            opt_v.step()
            last["vae_loss"] = float(loss.detach())
        for _ in range(int(adv_steps)):
            xl, xu = batch(x_lab, lab), batch(x_unl, unl)
            with torch.no_grad():
                mul, _ = vae.encode(xl)
                muu, _ = vae.encode(xu)
            dl, du = disc(mul), disc(muu)
            dloss = F.binary_cross_entropy_with_logits(dl, torch.ones_like(dl)) + F.binary_cross_entropy_with_logits(
                du, torch.zeros_like(du)
            )
            opt_d.zero_grad(set_to_none=True)
            dloss.backward()
            opt_d.step()
            last["disc_loss"] = float(dloss.detach())
        if progress is not None:
            progress(it + 1, int(iterations), vae_loss=last["vae_loss"], disc_loss=last["disc_loss"])
    return last


@torch.no_grad()
def labeled_probability(
    vae: VAE, disc: Discriminator, x: torch.Tensor, transform, *, device: torch.device, batch_size: int = 1024
) -> torch.Tensor:
    """The discriminator's probability that each image (uint8) comes from the labeled set."""
    vae.eval()
    disc.eval()
    out = []
    for s in range(0, len(x), batch_size):
        mu, _ = vae.encode(transform(x[s : s + batch_size].to(device)))
        out.append(torch.sigmoid(disc(mu)))
    return torch.cat(out) if out else torch.zeros(0, device=device)


@register_strategy("vaal")
class VAAL(Strategy):
    """VAAL (Sinha, Ebrahimi, Darrell: "Variational Adversarial Active Learning", ICCV 2019).

    A β-VAE learns a latent space of all images (labeled and unlabeled); a discriminator learns
    to tell labeled from unlabeled latent means, while the VAE is trained adversarially to make
    them indistinguishable. The unlabeled samples the discriminator is most sure are
    *unlabeled* — lowest probability of "labeled" — are queried. Task-agnostic: it needs only
    the images, not the task model.

    Choices where the paper leaves room (and settings): a small VAE (``width``, ``latent_dim``;
    the paper: 128…1024 channels, latent 32/64) and discriminator (``disc_hidden``; paper 512);
    Adam with ``lr`` 5·10⁻⁴ for both, β = 1 and adversary weight 1, two VAE steps and one
    discriminator step per iteration (the reference code's); images under the evaluation
    transform (normalized, no augmentation); ``iterations`` = ⌈epochs·|L| / batch_size⌉
    (the reference code counts epochs over the whole training set, far costlier); the VAE
    loss is the per-sample negative ELBO (squared error summed over pixels, KL summed over
    latent dimensions, both averaged over the batch) — the reference code divides only the
    reconstruction by the number of pixels and sums the KL over the batch, which lets the KL
    dominate and collapses the posterior on small images; discriminator trained on logits
    (BCE with logits). VAE and discriminator
    start fresh each round, as in the reference code; ``warm_start`` keeps them (and saves them
    for resume). Progress: stage ``vaal/train``, one unit per iteration.
    """

    needs = frozenset({"dataset", "images"})

    def __init__(
        self,
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 5e-4,
        latent_dim: int = 32,
        width: int = 32,
        disc_hidden: int = 512,
        beta: float = 1.0,
        adversary_weight: float = 1.0,
        vae_steps: int = 2,
        adv_steps: int = 1,
        min_iterations: int = 100,
        warm_start: bool = False,
        score_batch_size: int = 1024,
    ) -> None:
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.latent_dim, self.width, self.disc_hidden = int(latent_dim), int(width), int(disc_hidden)
        self.beta, self.adversary_weight = float(beta), float(adversary_weight)
        self.vae_steps, self.adv_steps, self.min_iterations = int(vae_steps), int(adv_steps), int(min_iterations)
        self.warm_start = bool(warm_start)
        self.score_batch_size = int(score_batch_size)
        self._saved: dict[str, Any] | None = None
        self.last_losses: dict[str, float] = {}

    def build(self, dataset: Any, device: torch.device, seed: int) -> tuple[VAE, Discriminator]:
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(int(seed))
            vae = VAE(dataset.in_channels, dataset.image_size, self.latent_dim, self.width)
            disc = Discriminator(self.latent_dim, self.disc_hidden)
        vae, disc = vae.to(device), disc.to(device)
        if self.warm_start and self._saved is not None:
            vae.load_state_dict(self._saved["vae"])
            disc.load_state_dict(self._saved["disc"])
        return vae, disc

    def iterations(self, n_labeled: int) -> int:
        return max(self.min_iterations, math.ceil(self.epochs * n_labeled / self.batch_size))

    def query(self, ctx: QueryContext) -> np.ndarray:
        ctx = require_ctx(ctx, self.name, "dataset")
        cache, n, rng = ctx.cache, ctx.n, ctx.rng
        ds, device = ctx.dataset, ctx.device
        seed = int(ctx.seed)
        vae, disc = self.build(ds, device, seed)
        x_lab = ds.x_train[torch.as_tensor(np.asarray(ctx.labeled, dtype=np.int64))].to(device)
        x_unl = ds.x_train[torch.as_tensor(np.asarray(cache.indices, dtype=np.int64))].to(device)
        self.last_losses = train_vaal(
            vae,
            disc,
            x_lab,
            x_unl,
            ds.eval_transform,
            iterations=self.iterations(len(x_lab)),
            batch_size=self.batch_size,
            lr=self.lr,
            beta=self.beta,
            adversary_weight=self.adversary_weight,
            vae_steps=self.vae_steps,
            adv_steps=self.adv_steps,
            device=device,
            seed=seed,
            progress=lambda done, total, **info: ctx.progress("vaal/train", done, total, **info),
        )
        if self.warm_start:
            self._saved = {"vae": cpu_state(vae), "disc": cpu_state(disc)}
        p_lab = labeled_probability(
            vae, disc, x_unl, ds.eval_transform, device=device, batch_size=self.score_batch_size
        )
        for k, v in self.last_losses.items():
            ctx.log(f"vaal/{k}", v)
        ctx.log("vaal/mean_p_labeled", float(p_lab.mean()) if len(p_lab) else float("nan"))
        return ctx.unlabeled[top_n(-p_lab, n, rng)]

    def state_dict(self) -> dict[str, Any]:
        return {"saved": self._saved} if self._saved is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._saved = state.get("saved")
