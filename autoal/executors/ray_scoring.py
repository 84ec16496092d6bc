"""Data-parallel pool scoring on Ray actors (DESIGN.md §5, ``scoring.executor=ray``).

:class:`RayScorer` is a drop-in replacement for :func:`autoal.cache.compute_cache`: it is called
with the same arguments and returns the same :class:`~autoal.cache.PoolCache` — exactly, not
approximately:

- the backbone pass (:func:`autoal.cache.embed_pool`) runs on ``num_actors`` actors, each on a
  contiguous shard of ``indices`` whose boundaries are multiples of ``batch_size``, so every
  batch holds the same samples as in the single-process pass (on CPU: bitwise-equal
  embeddings);
- the driver joins the shards in order and runs the head passes
  (:func:`autoal.cache.cache_from_embeddings`) with the same seed on its own device, so the
  Monte-Carlo dropout masks come from the one seeded generator of the single-process path.

Data movement: per call, the model's weights (CPU state dict plus the ``build_model`` arguments
recorded as ``model.spec``) are put in the object store once, under a content hash of the
weights; each actor rebuilds and loads the model only when that key changes (once per round,
even when a round scores both U and L). The pool images are put once per data set and reused
across rounds. Actors are created on the first call and kept until :meth:`RayScorer.close`.

Fault tolerance (issue 6): an actor that dies — between calls or while it holds a shard — is
replaced by a fresh one and its shard rescored; other shards are not recomputed.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from typing import Any

import numpy as np
import torch

from autoal.cache import PoolCache, cache_from_embeddings, compute_cache, embed_pool
from autoal.data.base import ALDataset
from autoal.device import prepare_model
from autoal.models import Backbone, build_model


def weights_key(model: torch.nn.Module, state_dict: dict[str, torch.Tensor] | None = None) -> str:
    """A content hash of a model's weights and buffers (and its ``spec``): equal keys mean the
    actors can keep the model they loaded."""
    sd = state_dict if state_dict is not None else model.state_dict()
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(sorted((getattr(model, "spec", None) or {}).items())).encode())
    h.update(type(model).__qualname__.encode())
    for name, t in sd.items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def shard_bounds(n: int, batch_size: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` row ranges over ``n`` rows, at most ``parts`` of them, each
    starting at a multiple of ``batch_size`` (so that the batches inside every shard are the
    batches of the single-process pass). Shards differ by at most one batch."""
    batch_size = max(int(batch_size), 1)
    n_batches = -(-int(n) // batch_size)
    k = max(1, min(int(parts), n_batches))
    out = []
    for chunk in np.array_split(np.arange(n_batches), k):
        if len(chunk):
            out.append((int(chunk[0]) * batch_size, min(int(chunk[-1] + 1) * batch_size, int(n))))
    return out


def _light_dataset(dataset: ALDataset) -> ALDataset:
    """A shallow copy without the test split and file paths: what an actor needs to score the
    pool (images and the evaluation transform)."""
    light = copy.copy(dataset)
    for name in ("x_test", "y_test"):
        t = getattr(light, name, None)
        if isinstance(t, torch.Tensor):
            setattr(light, name, t[:0].clone())
    if hasattr(light, "paths"):
        light.paths = None
    return light


class ScoringWorker:
    """The actor body: keeps the last loaded model (by weights key) and the last data set (by
    object id) between calls, and runs :func:`autoal.cache.embed_pool` on a shard."""

    def __init__(self, device: str = "cpu", num_threads: int = 0) -> None:
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.device = torch.device(device)
        self._model_key: str | None = None
        self._model: Backbone | None = None
        self._data_key: str | None = None
        self._dataset: ALDataset | None = None
        self._images: torch.Tensor | None = None
        self.model_loads = 0
        self.data_loads = 0
        self.shards = 0

    def embed(self, weights: list, data: list, indices: np.ndarray, batch_size: int) -> torch.Tensor:
        """Embeddings of ``indices`` (a shard), on CPU. ``weights`` and ``data`` are
        ``[key, ObjectRef]`` pairs, nested in lists so that Ray does not resolve the refs on
        every call: each is fetched only when its key changes."""
        import ray

        w_key, w_ref = weights
        if w_key != self._model_key:
            payload = ray.get(w_ref)
            if payload.get("spec") is not None:
                model = build_model(**payload["spec"])
                model.load_state_dict(payload["state_dict"])
            else:
                model = payload["module"]
            self._model = prepare_model(model, self.device).eval()
            self._model_key = w_key
            self.model_loads += 1
        d_key, d_ref = data
        if d_key != self._data_key:
            payload = ray.get(d_ref)
            self._dataset = payload["dataset"]
            pool = payload["images"] if payload["images"] is not None else self._dataset.x_train
            self._images = pool.to(self.device)
            self._data_key = d_key
            self.data_loads += 1
        assert self._model is not None and self._dataset is not None
        emb = embed_pool(
            self._model, self._dataset, indices, batch_size=batch_size, device=self.device, images=self._images
        )
        self.shards += 1
        return emb.cpu()

    def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "model_loads": self.model_loads,
            "data_loads": self.data_loads,
            "shards": self.shards,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
        }

    def stall(self, seconds: float) -> None:
        """Block this actor for ``seconds`` (diagnostics and fault-injection tests: a slow or
        hung worker)."""
        time.sleep(float(seconds))


_REMOTE_WORKER: Any = None


def _remote_worker():
    """``ray.remote(ScoringWorker)``, made once per process."""
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        import ray

        _REMOTE_WORKER = ray.remote(ScoringWorker)
    return _REMOTE_WORKER


class RayScorer:
    """Score the pool with ``num_actors`` Ray actors; call it like :func:`compute_cache`.

    Each actor reserves ``gpus_per_actor`` GPUs (fractions allowed) when the driver sees CUDA,
    else ``num_cpus`` CPUs (default 1; the actor's torch uses as many threads unless
    ``num_threads`` says otherwise). A dead actor is replaced and its shard rescored, up to
    ``max_retries`` times per shard and call. Ray is initialised on first use if the process has
    not done it (``ray.init()``: a local instance, or the cluster named by ``RAY_ADDRESS``).
    """

    def __init__(
        self,
        num_actors: int = 2,
        gpus_per_actor: float = 0.5,
        num_cpus: float = 1.0,
        *,
        num_threads: int | None = None,
        max_retries: int = 3,
        use_gpu: bool | None = None,
        start_timeout_s: float | None = 600.0,
    ) -> None:
        if int(num_actors) < 1:
            raise ValueError(f"num_actors must be >= 1; got {num_actors!r}")
        from autoal.extras import require

        require("Ray scoring (scoring.executor=ray)", "ray", alternative="scoring=local")
        self.num_actors = int(num_actors)
        self.gpus_per_actor = float(gpus_per_actor)
        self.num_cpus = float(num_cpus)
        self.num_threads = num_threads
        self.max_retries = int(max_retries)
        self._use_gpu = use_gpu
        self.start_timeout_s = start_timeout_s
        self._actors: list[Any] = []
        self._weights: tuple[str, Any] | None = None  # (key, ObjectRef)
        self._data: tuple[Any, Any, str, Any] | None = None  # (dataset, source tensor, key, ObjectRef)
        self.replacements = 0

    # -- resources ------------------------------------------------------------------------
    @property
    def use_gpu(self) -> bool:
        if self._use_gpu is not None:
            return bool(self._use_gpu)
        return torch.cuda.is_available() and self.gpus_per_actor > 0

    def actor_options(self) -> dict[str, Any]:
        """What one actor reserves (for a Tune trial's resource request: multiply by
        ``num_actors``)."""
        if self.use_gpu:
            return {"num_cpus": 0, "num_gpus": self.gpus_per_actor}
        return {"num_cpus": self.num_cpus, "num_gpus": 0}

    def resources(self) -> dict[str, float]:
        """Total resources held by the actors, as a Ray resource dict."""
        opts = self.actor_options()
        out = {"CPU": opts["num_cpus"] * self.num_actors}
        if opts["num_gpus"]:
            out["GPU"] = opts["num_gpus"] * self.num_actors
        return out

    # -- actors ---------------------------------------------------------------------------
    @property
    def actors(self) -> list[Any]:
        """The live actor handles (empty before the first call and after :meth:`close`)."""
        return list(self._actors)

    def _new_actor(self):
        opts = self.actor_options()
        threads = self.num_threads if self.num_threads is not None else max(1, int(round(self.num_cpus)))
        return (
            _remote_worker()
            .options(num_cpus=opts["num_cpus"], num_gpus=opts["num_gpus"], max_restarts=0)
            .remote("cuda" if self.use_gpu else "cpu", threads)
        )

    def _ensure_actors(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init()
        new = []
        while len(self._actors) < self.num_actors:
            self._actors.append(self._new_actor())
            new.append(self._actors[-1])
        self._wait_started(new)

    def _wait_started(self, actors: list[Any]) -> None:
        """Wait until new actors run; raise a clear error (instead of hanging) when the cluster
        cannot place them within ``start_timeout_s``."""
        import ray

        if not actors:
            return
        pings = [a.stats.remote() for a in actors]
        ready, _ = ray.wait(pings, num_returns=len(pings), timeout=self.start_timeout_s)
        if len(ready) < len(pings):
            need = self.actor_options()
            free = ray.available_resources()
            self.close()  # no actor request left pending in the cluster
            raise RuntimeError(
                f"RayScorer: {len(pings) - len(ready)} of {len(pings)} scoring actors did not start within "
                f"{self.start_timeout_s} s; each needs {need} and the cluster has "
                f"{free} free. Lower scoring.num_actors, free resources (e.g. Train "
                "workers or other trials), or declare the actors in the trial's resources."
            )
        ray.get(ready)  # surfaces a failed actor constructor

    def _replace(self, i: int) -> None:
        import ray

        try:
            ray.kill(self._actors[i], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._actors[i] = self._new_actor()
        self.replacements += 1
        self._wait_started([self._actors[i]])

    def stats(self) -> list[dict[str, Any]]:
        """Per-actor counters (model and data loads, shards scored, pid, device)."""
        import ray

        return ray.get([a.stats.remote() for a in self._actors])

    def close(self) -> None:
        """Kill the actors and drop the object-store references."""
        import ray

        if ray.is_initialized():
            for a in self._actors:
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # noqa: BLE001
                    pass
        self._actors = []
        self._weights = None
        self._data = None

    def __enter__(self) -> "RayScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- object store ---------------------------------------------------------------------
    def _put_weights(self, model: torch.nn.Module) -> list:
        import ray

        sd = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
        key = weights_key(model, sd)
        if self._weights is None or self._weights[0] != key:
            spec = getattr(model, "spec", None)
            if spec is not None:
                payload = {"spec": dict(spec), "state_dict": sd, "module": None}
            else:  # a model not built by build_model: ship the module itself
                payload = {"spec": None, "state_dict": None, "module": copy.deepcopy(model).to("cpu")}
            self._weights = (key, ray.put(payload))
        return [self._weights[0], self._weights[1]]

    def _put_data(self, dataset: ALDataset, images: torch.Tensor | None) -> list:
        import ray

        # ``images`` is the pool resident on the driver's device (the loop's GPU copy): actors
        # take the CPU tensors of the data set instead, unless the caller gave other CPU images
        source = images if images is not None and images.device.type == "cpu" else dataset.x_train
        if self._data is None or self._data[0] is not dataset or self._data[1] is not source:
            payload = {"dataset": _light_dataset(dataset), "images": None if source is dataset.x_train else source}
            key = f"{id(dataset):x}-{id(source):x}-{time.monotonic_ns():x}"
            # strong references to dataset and source: their ids cannot be reused while cached
            self._data = (dataset, source, key, ray.put(payload))
        return [self._data[2], self._data[3]]

    # -- scoring --------------------------------------------------------------------------
    def embed(
        self,
        model: torch.nn.Module,
        dataset: ALDataset,
        indices: np.ndarray,
        *,
        batch_size: int = 1024,
        images: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The backbone pass of :func:`autoal.cache.embed_pool`, sharded over the actors;
        returns the embeddings in the order of ``indices``, on CPU."""
        import ray
        from ray.exceptions import RayActorError

        indices = np.asarray(indices, dtype=np.int64)
        self._ensure_actors()
        weights = self._put_weights(model)
        data = self._put_data(dataset, images)
        bounds = shard_bounds(len(indices), batch_size, self.num_actors)
        shards = [indices[a:b] for a, b in bounds]

        def submit(i: int):
            return self._actors[i].embed.remote(weights, data, shards[i], int(batch_size))

        parts: list[torch.Tensor | None] = [None] * len(shards)
        tries = [0] * len(shards)
        pending = {submit(i): i for i in range(len(shards))}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            i = pending.pop(ref)
            try:
                parts[i] = ray.get(ref)
            except RayActorError:
                tries[i] += 1
                if tries[i] > self.max_retries:
                    raise
                self._replace(i)
                pending[submit(i)] = i
        return torch.cat([p for p in parts if p is not None])  # type: ignore[misc]

    def __call__(
        self,
        model: Backbone,
        dataset: ALDataset,
        indices: np.ndarray,
        *,
        mc_samples: int = 500,
        batch_size: int = 1024,
        device: torch.device | None = None,
        seed: int = 0,
        images: torch.Tensor | None = None,
        mc_masks: str = "consistent",
    ) -> PoolCache:
        """Same contract and result as :func:`autoal.cache.compute_cache`."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return compute_cache(
                model,
                dataset,
                indices,
                mc_samples=mc_samples,
                batch_size=batch_size,
                device=device,
                seed=seed,
                images=images,
                mc_masks=mc_masks,
            )
        device = device or next(model.parameters()).device
        emb = self.embed(model, dataset, indices, batch_size=batch_size, images=images).to(device)
        return cache_from_embeddings(model, indices, emb, mc_samples=mc_samples, seed=seed, mc_masks=mc_masks)

    def __repr__(self) -> str:
        return (
            f"RayScorer(num_actors={self.num_actors}, use_gpu={self.use_gpu}, "
            f"actor={self.actor_options()}, live={len(self._actors)})"
        )


__all__ = ["RayScorer", "ScoringWorker", "shard_bounds", "weights_key"]
