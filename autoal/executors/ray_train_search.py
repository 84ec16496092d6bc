"""AutoAL's search on Ray Train (DESIGN.md §5, the paper formulation's ``search_executor: ray_train``).

One round's FitNet/SearchNet/LPM updates — every search cycle of the round — run inside ONE
``TorchTrainer.fit()`` with ``num_workers`` workers (a fit costs ~10 s of fixed overhead, so
never one per step or per cycle). The math is :func:`autoal.search.cycle.search_cycle`, called
unchanged in every worker with a :class:`BatchSharding` as its ``dist`` argument:

- **Inputs.** The nets and their optimizers (CPU copies, pickled together so the optimizers
  keep pointing at the nets' parameters), the labeled images and labels, the cycle plans (A/V
  split, seed, FitNet reset) and the candidates go to the object store once; each worker
  fetches them, moves them to its device and wraps each net with
  ``ray.train.torch.prepare_model`` (DDP; gloo on CPU, NCCL on GPU).
- **Data parallelism over the batch.** Every worker cuts A and V into the same seeded batches
  and computes each V batch's candidate inputs (S_k, θ) on the whole batch — they depend on the
  batch as a set (top-⌈tB⌉ indicators, a GMM over the batch), so they are the in-process values.
  Each worker then runs the forward/backward passes on its contiguous slice of the batch's rows
  (rows stay aligned: images, labels, S, z, CE are sliced by the same positions). A batch of
  fewer than 2 rows per worker is processed whole by every worker instead (BatchNorm needs 2).
- **The soft count.** α = Σ_{x∈batch} z(x) is a sum over the batch, and the budget regularizer
  R(α) compares it with tB. A worker only sees its slice, so α is all-reduced (summed) across
  workers with a differentiable all-reduce (its backward is again an all-reduce of the
  gradients) and R uses the global B: R sees the whole batch, and
  after DDP's gradient averaging the gradient is the single-process gradient of R. Per-sample
  means (−mean(z·CE) for SearchNet, mean(z·CE) for FitNet, FitNet's warm-up cross-entropy) are
  taken over the whole batch: each worker's term is ``W/B · Σ_{slice}``, which DDP's average
  turns into ``1/B · Σ_{batch}``. The alternating updates are first-order, so DDP is sound.
- **What differs from one process.** BatchNorm statistics in training mode are per slice on
  CPU (``SyncBatchNorm`` is used on GPUs, where PyTorch supports it); the LPM's pairwise ranking
  loss pairs samples within each slice; dropout and augmentation draws differ. Losses reported
  are the whole-batch values (averaged over workers).
- **Outputs.** Rank 0 writes the nets' and optimizers' state dicts and the cycle statistics to a
  checkpoint of tensors and plain values (``ray.train.report``); the driver reads it with
  ``weights_only=True`` (:func:`load_search_state`: nothing in the file runs), loads it into the
  strategy's nets and optimizers in place and deletes the run's folder under ``storage_path``.

``storage_path`` must be an absolute path (Ray Train 2.60 rejects relative ones) that every
node of the cluster can write, e.g. shared storage or ``s3://...`` on a multi-node cluster;
the default is a folder under the system temporary directory (enough for one machine).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import pickle
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autoal.checkpoint_io import plain_checkpoint, safe_torch_load
from autoal.device import prepare_batch, prepare_model
from autoal.search.cycle import CycleStats, SearchBatch, SearchConfig, SearchNets, SearchOptimizers, search_cycle
from autoal.search.round import CyclePlan, SearchRound, fresh_like

STATE_FILE = "search_state.pt"
_NET_NAMES = ("searchnet", "fitnet", "lpm")


# ---------------------------------------------------------------------------------------------
# Inside a worker: DDP over the rows of each batch
# ---------------------------------------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """Sum over the process group; the backward sums the incoming gradients the same way (the
    gradient of Σ_w x_w with respect to x_r, given every worker's loss)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as tdist

        out = x.detach().clone()
        tdist.all_reduce(out, op=tdist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as tdist

        g = grad.detach().clone().contiguous()
        tdist.all_reduce(g, op=tdist.ReduceOp.SUM)
        return g


class BatchSharding:
    """The ``dist`` hook of :mod:`autoal.search.cycle` for ``world_size`` data-parallel
    workers: which rows of a batch this worker processes, and the reductions that make the
    losses whole-batch quantities.

    A batch of ``n`` rows is cut into ``world_size`` contiguous slices (``np.array_split``
    order, rank r takes slice r) when every slice has at least ``min_rows`` rows; otherwise every
    worker processes the whole batch ("replicated": no reduction needed, DDP averages equal
    gradients)."""

    def __init__(self, rank: int, world_size: int, min_rows: int = 2) -> None:
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.min_rows = int(min_rows)

    def sharded(self, n_rows: int) -> bool:
        return self.world_size > 1 and n_rows >= self.min_rows * self.world_size

    def local_rows(self, n_rows: int) -> slice:
        """This worker's rows of a batch of ``n_rows``."""
        if not self.sharded(n_rows):
            return slice(0, n_rows)
        sizes = [len(c) for c in np.array_split(np.arange(n_rows), self.world_size)]
        start = int(sum(sizes[: self.rank]))
        return slice(start, start + sizes[self.rank])

    def shard(self, batch: SearchBatch) -> SearchBatch:
        """The batch restricted to this worker's rows (every per-row tensor by the same rows)."""
        sl = self.local_rows(len(batch))
        if sl == slice(0, len(batch)):
            return batch
        return dataclasses.replace(
            batch,
            x=batch.x[sl],
            y=batch.y[sl],
            S=batch.S[sl],
            scores=None if batch.scores is None else batch.scores[sl],
        )

    def sum(self, local_sum: torch.Tensor, n_rows: int) -> torch.Tensor:
        """Σ over the whole batch of a quantity whose sum over this worker's rows is
        ``local_sum``: a differentiable all-reduce (its backward all-reduces the gradient)."""
        if not self.sharded(n_rows):
            return local_sum
        return _AllReduceSum.apply(local_sum)

    def mean(self, per_row: torch.Tensor, n_rows: int) -> torch.Tensor:
        """This worker's share of the whole-batch mean, scaled for DDP's gradient average:
        ``W/B · Σ_{my rows}`` (averaged over the W workers: ``1/B · Σ_{batch}``)."""
        if not self.sharded(n_rows):
            return per_row.mean()
        return per_row.sum() * (self.world_size / float(n_rows))


@functools.lru_cache(maxsize=None)
def _forwarding_ddp_class():
    from torch.nn.parallel import DistributedDataParallel

    class ForwardingDDP(DistributedDataParallel):
        """DDP that forwards unknown attributes (``embed``, ``fc``, ``head_parameters``,
        ``num_candidates`` ...) to the wrapped net, so the search functions take it as a net.
        Calls through forwarded methods bypass DDP's hooks: they are used without gradients."""

        def __getattr__(self, name: str):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.module, name)

    return ForwardingDDP


def _wrap(net: torch.nn.Module, device: torch.device, world_size: int) -> torch.nn.Module:
    """``ray.train.torch.prepare_model`` (device + DDP), with attribute forwarding."""
    import ray.train.torch

    if world_size > 1 and device.type == "cuda":
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    wrapped = ray.train.torch.prepare_model(net, move_to_device=device)
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(wrapped, DistributedDataParallel):
        wrapped.__class__ = _forwarding_ddp_class()
    return wrapped


def _opt_to_device(opt: torch.optim.Optimizer | None) -> None:
    """Move an optimizer's state next to its parameters (load_state_dict casts by parameter)."""
    if opt is not None:
        opt.load_state_dict(opt.state_dict())


def _train_loop(config: dict[str, Any]) -> None:
    """The Ray Train worker: every cycle of the round, DDP over the batch rows."""
    import ray
    import ray.train
    import ray.train.torch
    import torch.distributed as tdist

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if config.get("num_threads"):
        torch.set_num_threads(int(config["num_threads"]))
    payload = pickle.loads(ray.get(config["payload"]))
    device = ray.train.torch.get_device()
    nets: SearchNets = payload["nets"]
    opts: SearchOptimizers = payload["opts"]
    for name in _NET_NAMES:
        net = getattr(nets, name)
        if net is not None:
            setattr(nets, name, prepare_model(net, device))
        _opt_to_device(getattr(opts, name))
    x = prepare_batch(payload["x"], device)
    y = payload["y"].to(device)
    cfg: SearchConfig = payload["cfg"]
    candidates = payload["candidates"]
    augment = payload["augment"]
    dist = BatchSharding(rank, world) if world > 1 else None
    wrapped = SearchNets(
        *(None if getattr(nets, n) is None else _wrap(getattr(nets, n), device, world) for n in _NET_NAMES)
    )

    stats: list[dict[str, Any]] = []
    for plan in payload["plans"]:
        if plan.reset_fitnet:
            nets.fitnet, opts.fitnet = fresh_like(nets.fitnet, opts.fitnet, plan.seed, device)
            wrapped.fitnet = _wrap(nets.fitnet, device, world)
        if plan.torch_seed is not None:
            torch.manual_seed(int(plan.torch_seed) + 1_000_003 * rank)
        a = torch.as_tensor(plan.a_rows, dtype=torch.long, device=device)
        v = torch.as_tensor(plan.v_rows, dtype=torch.long, device=device)
        v_cache = None if plan.v_cache is None else plan.v_cache.to(device)
        st = search_cycle(
            wrapped,
            opts,
            (x[a], y[a]),
            (x[v], y[v]),
            cfg,
            candidates,
            seed=int(plan.seed),
            v_cache=v_cache,
            augment=augment,
            dist=dist,
        )
        rec = dataclasses.asdict(st)
        if world > 1:  # each worker's loss is its share of the batch loss: average → whole-batch loss
            keys = ("loss_warmup", "loss_fitnet", "loss_searchnet", "loss_lpm")
            vals = torch.tensor([rec[k] for k in keys], dtype=torch.float64)
            tdist.all_reduce(vals, op=tdist.ReduceOp.SUM)
            rec.update({k: float(v_) / world for k, v_ in zip(keys, vals.tolist())})
        stats.append(rec)

    metrics = (
        {
            "cycles": len(stats),
            **{k: float(stats[-1][k]) for k in ("loss_fitnet", "loss_searchnet", "loss_lpm", "alpha", "alpha_target")},
        }
        if stats
        else {"cycles": 0}
    )
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            save_search_state(os.path.join(tmp, STATE_FILE), nets, opts, stats, world)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics, checkpoint=None)


def save_search_state(
    path: str, nets: SearchNets, opts: SearchOptimizers, stats: list[dict[str, Any]], world_size: int
) -> None:
    """The round's result as a checkpoint of tensors and plain values (the nets' and optimizers'
    state dicts on the CPU, the per-cycle statistics, the world size), which
    :func:`load_search_state` reads with ``weights_only=True``."""
    state: dict[str, Any] = {"stats": stats, "world_size": int(world_size)}
    for name in _NET_NAMES:
        net, opt = getattr(nets, name), getattr(opts, name)
        state[name] = None if net is None else {k: v.detach().cpu() for k, v in net.state_dict().items()}
        state[f"opt_{name}"] = None if opt is None else _cpu(opt.state_dict())
    torch.save(plain_checkpoint(state, path), path)


def load_search_state(path: str) -> dict[str, Any]:
    """The checkpoint :func:`save_search_state` wrote, read with ``weights_only=True``: a file
    holding anything but tensors and plain values (one whose unpickling could run code) is a
    StateError naming it, and nothing in it runs."""
    from autoal.errors import StateError

    state = safe_torch_load(path, "cpu", hint="the Ray Train search's result is not usable; rerun the round")
    if not isinstance(state, dict) or not isinstance(state.get("stats"), list):
        raise StateError(f"{path}: not a Ray Train search state (expected a mapping with 'stats'); rerun the round")
    return state


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------
# The driver side
# ---------------------------------------------------------------------------------------------
def default_storage_path() -> str:
    """``$AUTOAL_RAY_TRAIN_STORAGE`` or ``<tmp>/autoal_ray_train`` (absolute)."""
    return os.path.abspath(
        os.environ.get("AUTOAL_RAY_TRAIN_STORAGE") or os.path.join(tempfile.gettempdir(), "autoal_ray_train")
    )


@dataclass
class RayTrainSearch:
    """One round's search (:class:`~autoal.search.round.SearchRound`) and where it runs:
    ``num_workers`` DDP workers; ``use_gpu`` defaults to ``torch.cuda.is_available()`` on the
    driver; each worker takes ``resources_per_worker`` (default 1 CPU, or 1 GPU with
    ``use_gpu``); ``storage_path``: see the module docstring (the run's folder under it is
    removed afterwards unless ``keep_storage``); ``num_threads``: torch threads per worker."""

    work: SearchRound
    num_workers: int = 2
    use_gpu: bool | None = None
    resources_per_worker: dict[str, float] | None = None
    storage_path: str | None = None
    num_threads: int | None = None
    keep_storage: bool = False


def run_search_on_ray_train(job: RayTrainSearch) -> list[CycleStats]:
    """Run every cycle of ``job.work.plans`` (in order) in one ``TorchTrainer.fit()`` with
    ``job.num_workers`` DDP workers, then load the trained weights and optimizer states back into
    the round's nets and optimizers in place. Returns one :class:`CycleStats` per cycle."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if int(job.num_workers) < 1:
        raise ValueError(f"num_workers must be >= 1; got {job.num_workers!r}")
    if not ray.is_initialized():
        ray.init()
    use_gpu = torch.cuda.is_available() if job.use_gpu is None else bool(job.use_gpu)
    storage = job.storage_path or default_storage_path()
    if "://" not in storage:
        storage = os.path.abspath(storage)
        os.makedirs(storage, exist_ok=True)
    name = f"autoal-search-{uuid.uuid4().hex[:12]}"
    ref = ray.put(_payload(job.work))
    resources = job.resources_per_worker or ({"CPU": 1, "GPU": 1} if use_gpu else {"CPU": 1})
    _warn_if_short(resources_for(job.num_workers, use_gpu, resources))
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"payload": ref, "num_threads": job.num_threads},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=int(job.num_workers), use_gpu=use_gpu, resources_per_worker=resources),
        # a finite failure policy: a worker group that cannot start or dies ends the fit with an
        # error instead of retrying forever
        run_config=RunConfig(name=name, storage_path=storage, failure_config=FailureConfig(max_failures=0)),
    )
    try:
        result = trainer.fit()
        if result.checkpoint is None:
            raise RuntimeError("Ray Train search: the workers reported no checkpoint")
        with result.checkpoint.as_directory() as d:
            state = load_search_state(os.path.join(d, STATE_FILE))
    finally:
        del ref
        if not job.keep_storage and "://" not in storage:
            shutil.rmtree(os.path.join(storage, name), ignore_errors=True)
    return _load_back(job.work, state)


def _payload(work: SearchRound) -> bytes:
    """CPU copies of the nets and optimizers, the labeled tensors, the plans, the config, the
    candidates and the augmentation in one pickle (cloudpickle: the augmentation may be a
    closure), so that the optimizers' parameter references and state stay tied to the nets'
    parameters across the pickle."""
    from ray import cloudpickle

    cpu_nets = SearchNets(
        *(None if getattr(work.nets, n) is None else copy.deepcopy(getattr(work.nets, n)).cpu() for n in _NET_NAMES)
    )
    cpu_opts = SearchOptimizers(*(None for _ in _NET_NAMES))
    for n in _NET_NAMES:
        opt, net = getattr(work.opts, n), getattr(cpu_nets, n)
        if opt is not None and net is not None:
            fresh = type(opt)(net.parameters(), **opt.defaults)
            fresh.load_state_dict(_cpu(opt.state_dict()))
            setattr(cpu_opts, n, fresh)
    return cloudpickle.dumps(
        {
            "nets": cpu_nets,
            "opts": cpu_opts,
            "x": work.x.detach().cpu(),
            "y": work.y.detach().cpu(),
            "cfg": work.cfg,
            "plans": [
                dataclasses.replace(
                    p,
                    a_rows=np.array(p.a_rows, dtype=np.int64),
                    v_rows=np.array(p.v_rows, dtype=np.int64),
                    v_cache=None if p.v_cache is None else p.v_cache.to("cpu"),
                )
                for p in work.plans
            ],
            "candidates": list(work.candidates),
            "augment": work.augment,
        }
    )


def _load_back(work: SearchRound, state: dict[str, Any]) -> list[CycleStats]:
    """Load the workers' weights and optimizer states into the round's nets and optimizers in
    place; the per-cycle statistics, each with the world size."""
    for n in _NET_NAMES:
        net, opt = getattr(work.nets, n), getattr(work.opts, n)
        if net is not None and state.get(n) is not None:
            net.load_state_dict(state[n])
        if opt is not None and state.get(f"opt_{n}") is not None:
            opt.load_state_dict(state[f"opt_{n}"])
    out = []
    for rec in state["stats"]:
        extra = rec.pop("extra", {})
        st = CycleStats(**rec)
        st.extra = dict(extra, world_size=state["world_size"])
        out.append(st)
    return out


def train_workers_fit(
    num_workers: int, use_gpu: bool | None = None, resources_per_worker: dict[str, float] | None = None
) -> str | None:
    """Why the round's Train workers cannot be placed right now (the resources they need against
    what the Ray cluster has free), or None when they can. Train V2 places its workers in a
    placement group of its own, outside any Tune trial's, so what is free is what counts: on a
    2-CPU machine a run's scoring actors alone can hold every CPU."""
    import ray

    if not ray.is_initialized():
        return None  # run_search_on_ray_train starts a local instance of its own
    need = resources_for(num_workers, use_gpu, resources_per_worker)
    free = ray.available_resources()
    short = {k: v for k, v in need.items() if float(free.get(k, 0.0)) + 1e-9 < v}
    if not short:
        return None
    return (
        f"the Train workers need {_fmt(need)} but Ray has {_fmt({k: free.get(k, 0.0) for k in need})} free "
        f"(of {_fmt({k: ray.cluster_resources().get(k, 0.0) for k in need})})"
    )


def _fmt(r: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {float(v):g}" for k, v in sorted(r.items())) + "}"


def _warn_if_short(need: dict[str, float]) -> None:
    """The fit waits until its workers can be placed: say so when they cannot be right now
    (e.g. a run's scoring actors hold the CPUs the workers need)."""
    import warnings

    import ray

    free = ray.available_resources()
    short = {k: v for k, v in need.items() if float(free.get(k, 0.0)) + 1e-9 < v}
    if short:
        warnings.warn(
            f"Ray Train search: the workers need {need} but the cluster has {free} free; the fit waits "
            "until resources are released (declare scorer actors and Train workers in the trial's "
            "resources, or lower num_workers / scoring.num_actors)",
            RuntimeWarning,
            stacklevel=3,
        )


def resources_for(
    num_workers: int, use_gpu: bool | None = None, resources_per_worker: dict[str, float] | None = None
) -> dict[str, float]:
    """Total resources the round's Train workers hold (to declare in a Tune trial's request;
    the V2 controller itself takes no CPU)."""
    use_gpu = torch.cuda.is_available() if use_gpu is None else bool(use_gpu)
    per = resources_per_worker or ({"CPU": 1, "GPU": 1} if use_gpu else {"CPU": 1})
    return {k: float(v) * int(num_workers) for k, v in per.items()}


__all__ = [
    "BatchSharding",
    "CyclePlan",
    "RayTrainSearch",
    "run_search_on_ray_train",
    "default_storage_path",
    "resources_for",
    "train_workers_fit",
    "STATE_FILE",
    "save_search_state",
    "load_search_state",
]
