"""Any ``torch.nn.Module`` as autoal's task model (in the spirit of baal's ``ModelWrapper``).

What autoal needs of a task model is the :class:`~autoal.models.base.Backbone` contract: an
embedding (the head's input), a linear head over it, Monte-Carlo dropout on that head, and, for
the strategies that read intermediate feature maps (LPL, the paper formulation's loss-prediction
module), the stage maps. :class:`ModuleAdapter` derives all of it from a plain classifier:

- **The head** is the module's last ``nn.Linear`` (in registration order), or the submodule named
  by ``head=``; it must be applied last, to the embedding, producing the logits. The adapter
  replaces it in its own copy of the module by ``nn.Identity``, so the rest of the module computes
  the embedding, which must come out as an (N, D) tensor with D = the head's ``in_features``.
- **MC dropout**: the adapter puts ``nn.Dropout(dropout)`` between the embedding and the head (as
  the built-in backbones do), trained with it, and draws the MC passes from the head over cached
  embeddings (:mod:`autoal.mc`). ``dropout=0`` leaves the MC strategies (BALD, MeanSTD, VarRatio)
  without variance.
- **Stages** (optional): names of submodules whose outputs (4-D maps) are read by forward hooks.
- **The model back**: :meth:`user_module` is the user's own module with the trained weights (the
  run's ``RunResult.model``) and :meth:`user_state_dict` its weights under the module's own keys
  (the run folder's ``final_model.pt``: ``module.load_state_dict`` takes it).
- **Fresh weights each round**: :meth:`fresh` deep-copies the adapter and calls
  ``reset_parameters()`` on every submodule that has one (all of torch's standard layers), under
  the caller's seed. ``reinit=False`` keeps the weights passed in (e.g. a pretrained body) as the
  start of every round instead.

The adapter is a :class:`~autoal.models.base.Backbone`, so the loop, the strategies and the Ray
executors (which ship the module itself when a model has no ``build_model`` spec) take it as is.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from autoal.api_marker import public_api
from autoal.errors import ConfigError
from autoal.models.base import Backbone


def _find_head(module: nn.Module, head: str | None) -> tuple[str, nn.Linear]:
    named = dict(module.named_modules())
    if head is not None:
        sub = named.get(head)
        if not isinstance(sub, nn.Linear):
            found = "no such submodule" if sub is None else f"a {type(sub).__name__}"
            raise ConfigError(f"model head {head!r}: expected the name of the module's nn.Linear head; found {found}")
        return head, sub
    linears = [(n, m) for n, m in named.items() if isinstance(m, nn.Linear) and n]
    if not linears:
        raise ConfigError(
            f"model: a {type(module).__name__} has no nn.Linear head; autoal needs a linear "
            "classifier over an embedding (or wrap the model in a Backbone subclass)"
        )
    return linears[-1]


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, leaf, new)


@public_api
class ModuleAdapter(Backbone):
    """A user's classifier as a :class:`Backbone` (see the module docstring for the contract).

    ``module``: the classifier (it is deep-copied; the caller's object is never trained).
    ``head``: the name of its linear head (default: the last ``nn.Linear``). ``stages``: names of
    submodules whose outputs are the stage maps. ``dropout``: MC dropout in front of the head.
    ``embedding_norm``: a per-sample layer normalization of the embedding (off by default: the
    module computes what its author wrote). ``reinit``: fresh weights each round (default)."""

    def __init__(
        self,
        module: nn.Module,
        *,
        head: str | None = None,
        stages: Sequence[str] = (),
        dropout: float = 0.3,
        embedding_norm: bool = False,
        reinit: bool = True,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise ConfigError(f"model: expected a torch.nn.Module; got {type(module).__name__}")
        if isinstance(module, Backbone):
            raise ConfigError("model: a Backbone needs no adapter; pass it directly")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"model dropout: must lie in [0, 1); got {dropout!r}")
        body = copy.deepcopy(module)
        head_name, fc = _find_head(body, head)
        super().__init__(fc.out_features, dropout, embedding_norm)
        _replace(body, head_name, nn.Identity())
        named = dict(body.named_modules())
        missing = [s for s in stages if s not in named or not s]
        if missing:
            raise ConfigError(
                f"model stages: {', '.join(map(repr, missing))} name no submodule of the {type(module).__name__}"
            )
        self.body = body
        self.embedding_dim = fc.in_features
        self.head_name = head_name
        self.stage_names = tuple(stages)
        self.reinit = bool(reinit)
        self.module_class = f"{type(module).__module__}.{type(module).__qualname__}"
        self.dropout = nn.Dropout(self.dropout_p)
        self.fc = fc
        self._stage_channels: list[int] | None = None
        self.__dict__["_reference"] = module  # the caller's module, to check the contract once (probe)

    # -- identity and fresh copies ------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What identifies the model a run trains: the class, a digest of the architecture (the
        module's printed form and its parameter shapes), the head and stage names, dropout,
        normalization, and, with ``reinit=False``, a digest of the starting weights."""
        arch = repr(self.body) + "|" + ";".join(f"{n}:{tuple(p.shape)}" for n, p in self.named_parameters())
        ident = {
            "class": self.module_class,
            "architecture_sha256": hashlib.sha256(arch.encode()).hexdigest()[:16],
            "head": self.head_name,
            "stages": list(self.stage_names),
            "dropout": self.dropout_p,
            "embedding_norm": self.embedding_norm,
            "reinit": self.reinit,
        }
        if not self.reinit:
            h = hashlib.sha256()
            for t in self.state_dict().values():
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            ident["weights_sha256"] = h.hexdigest()[:16]
        return ident

    def fresh(self) -> "ModuleAdapter":
        """A copy with fresh weights (``reset_parameters`` of every layer, drawn from torch's
        global RNG: seed it first), or the starting weights when ``reinit`` is off."""
        new = copy.deepcopy(self)
        if self.reinit:
            for m in new.modules():
                if m is not new and callable(getattr(m, "reset_parameters", None)):
                    m.reset_parameters()
        return new

    # -- the user's module back ----------------------------------------------------------------
    def user_module(self) -> nn.Module:
        """The user's own module — its class, its submodule names — holding this adapter's
        weights, in eval mode: the body with its head put back (the adapter's MC dropout is not
        part of it). It computes what the adapter computes in eval mode unless ``embedding_norm``
        is on (the user's module does not normalize its embedding)."""
        module = copy.deepcopy(self.body)
        _replace(module, self.head_name, copy.deepcopy(self.fc))
        return module.eval()

    def user_state_dict(self) -> dict[str, torch.Tensor]:
        """This adapter's weights under the user's module's own keys (``features.0.weight``,
        ``<head>.weight``; not ``body.…``/``fc.…``): ``module.load_state_dict`` takes it."""
        head = f"{self.head_name}."
        out = {k[len("body.") :]: v for k, v in self.state_dict().items() if k.startswith("body.")}
        out.update({head + k[len("fc.") :]: v for k, v in self.state_dict().items() if k.startswith("fc.")})
        return out

    def load_user_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """The inverse of :meth:`user_state_dict` (strict: every key of the user's module)."""
        head = f"{self.head_name}."
        mapped = {("fc." + k[len(head) :]) if k.startswith(head) else f"body.{k}": v for k, v in state.items()}
        self.load_state_dict(mapped)

    # -- the Backbone contract ----------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalized(self._check(self.body(x)))

    def _normalized(self, e: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(e, e.shape[-1:]) if self.embedding_norm else e

    def _check(self, e: torch.Tensor) -> torch.Tensor:
        if e.ndim != 2 or e.shape[1] != self.embedding_dim:
            raise ConfigError(
                f"model: with its head {self.head_name!r} removed, the {self.module_class} must return "
                f"an (N, {self.embedding_dim}) embedding; got shape {tuple(e.shape)} (the head must be "
                "the last layer, applied to a flat embedding)"
            )
        return e

    def _with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if not self.stage_names:
            raise ConfigError(
                f"model: this strategy reads feature maps; name the {self.module_class}'s stage "
                "submodules (ModuleAdapter(module, stages=[...]))"
            )
        maps: dict[str, torch.Tensor] = {}
        hooks = [
            self.body.get_submodule(n).register_forward_hook(lambda _m, _i, out, n=n: maps.__setitem__(n, out))
            for n in self.stage_names
        ]
        try:
            emb = self.embed(x)
        finally:
            for h in hooks:
                h.remove()
        out = [maps[n] for n in self.stage_names]
        bad = [n for n, m in zip(self.stage_names, out) if not (isinstance(m, torch.Tensor) and m.ndim == 4)]
        if bad:
            raise ConfigError(f"model stages: {', '.join(map(repr, bad))} must output (N, C, H, W) feature maps")
        if self._stage_channels is None:
            self._stage_channels = [int(m.shape[1]) for m in out]
        return emb, out

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._with_stages(x)[1]

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        emb, maps = self._with_stages(x)
        return self.head(emb), maps

    def probe(self, example: torch.Tensor) -> None:
        """Run one example batch through the module (no gradient, eval mode) to check the
        contract and learn the stage channels; called by the loop before the first round. The
        first probe also checks that the caller's module computes ``head(embedding)``: the same
        logits as the adapter's head over its embedding (else the head was not the last layer)."""
        reference = self.__dict__.pop("_reference", None)
        example = example.to(next(self.parameters()).device)
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                emb = self._with_stages(example)[0] if self.stage_names else self.embed(example)
                if reference is not None and not self.embedding_norm:
                    ref_was = reference.training
                    reference.eval()
                    try:
                        want = reference(example)
                    finally:
                        reference.train(ref_was)
                    got = self.fc(emb)
                    if not (
                        isinstance(want, torch.Tensor)
                        and want.shape == got.shape
                        and torch.allclose(want.to(got), got, rtol=1e-4, atol=1e-4)
                    ):
                        raise ConfigError(
                            f"model: the {self.module_class}'s output is not its head "
                            f"{self.head_name!r} applied to the embedding; the nn.Linear head must be "
                            "the module's last layer (name it with ModuleAdapter(module, head=...))"
                        )
        finally:
            self.train(was)

    @property
    def stage_channels(self) -> list[int]:
        if self._stage_channels is None:
            raise ConfigError(
                "model: the stage channels are known after the first forward pass (ModuleAdapter.probe)"
                if self.stage_names
                else f"model: this strategy reads feature maps; name the "
                f"{self.module_class}'s stage submodules (ModuleAdapter(module, stages=[...]))"
            )
        return self._stage_channels


def new_like(model: nn.Module, seed: int) -> Backbone:
    """A freshly initialized model of the same build as ``model``, seeded: ``build_model(**spec)``
    for the built-in families, :meth:`ModuleAdapter.fresh` for an adapted module."""
    from autoal.models.registry import build_model

    torch.manual_seed(int(seed))
    spec = getattr(model, "spec", None)
    if spec is not None:
        return build_model(**spec)
    if isinstance(model, ModuleAdapter):
        return model.fresh()
    raise ConfigError(
        f"model: cannot build a fresh copy of a {type(model).__name__}: it was neither built by "
        "autoal.models.build_model nor wrapped in autoal.models.ModuleAdapter"
    )


def same_build(a: nn.Module | None, b: nn.Module | None) -> bool:
    """Whether ``a`` and ``b`` come from the same build (spec, or adapter identity)."""
    if a is None or b is None:
        return False
    if getattr(a, "spec", None) is not None or getattr(b, "spec", None) is not None:
        return getattr(a, "spec", None) == getattr(b, "spec", None)
    return isinstance(a, ModuleAdapter) and isinstance(b, ModuleAdapter) and a.identity() == b.identity()
