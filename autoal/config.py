"""The run configuration as plain dataclasses (the library knows nothing of Hydra).

``RunConfig.from_dict`` builds a config from nested dicts (e.g. a resolved Hydra config) and
rejects misspelt keys and bad values with one :class:`~autoal.errors.ConfigError` that names the
field and lists the valid choices, before any work starts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from autoal.bounds import bounded, check_bounds
from autoal.data.registry import DataSpec
from autoal.errors import ConfigError
from autoal.mc import MASK_MODES
from autoal.models import model_family, model_names
from autoal.training import MAX_EPOCHS, TrainConfig  # noqa: F401 - MAX_EPOCHS: re-exported beside the others
from autoal.typed_config import build_typed
from autoal.writable import file_in_the_way
from autoal.paths import user_path
from autoal.api_marker import public_api


#: upper bounds that keep a typo from turning into hours of work or an allocator failure
MAX_MC_SAMPLES = 10_000
MAX_ROUNDS = 100_000
MAX_IMAGE_SIZE = 1024
MAX_WIDTH = 1024
#: MLflow's limits (mlflow/store/tracking/dbmodels/models.py): the experiments.name column
#: (String(256); MLflow itself checks 500, SQLite no length, a server's MySQL or PostgreSQL 256),
#: the tags' key column (String(250), checked by MLflow) and value column (String(8000))
MAX_EXPERIMENT_NAME = 256
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 8000


@dataclass
class ModelConfig:
    """Task-model backbone: ``small_cnn`` (tiny inputs, tests) or ``resnet18`` (small-image
    stem) for images, ``mlp`` for features; ``width`` None means the backbone's default;
    ``depth`` (``mlp`` only: hidden layers) None means the family's default; dropout in front of the head;
    ``embedding_norm`` normalizes the embedding per sample (DESIGN.md §3.1.1; false = the
    un-normalized embedding of autoal ≤ 0.1, kept for the ablation)."""

    name: str = "small_cnn"
    width: int | None = bounded(None, 1, MAX_WIDTH, note="channels of the first stage; null = the model's default")
    dropout: float = bounded(0.3, 0, 1, high_open=True)
    embedding_norm: bool = True
    depth: int | None = bounded(None, 1, 64, note="hidden layers (mlp); null = the model's default")

    def validate(self) -> None:
        if self.name not in model_names():
            raise ConfigError(f"model.name: unknown model {self.name!r}; valid choices: {', '.join(model_names())}")
        if self.depth is not None and model_family(self.name).default_depth is None:
            raise ConfigError(
                f"model.depth: model {self.name!r} has no depth option; only mlp has (set model.depth to null)"
            )


@dataclass
class ALConfig:
    """The AL protocol: initial labeled set size (optionally class-balanced), ``rounds`` rounds
    of ``query_size`` labels, fresh task-model weights each round unless ``warm_start``,
    ``mc_samples`` Monte-Carlo dropout head passes for the cache with ``mc_masks``
    (``consistent``: the same T masks for every sample; ``independent``: fresh masks per sample,
    see :mod:`autoal.mc`), and the run's seed."""

    initial_size: int = bounded(20, 1)
    query_size: int = bounded(10, 1, note="the labels each round buys")
    rounds: int = bounded(10, 0, MAX_ROUNDS)
    balanced_init: bool = False
    warm_start: bool = False
    mc_samples: int = bounded(500, 0, MAX_MC_SAMPLES, note="Monte-Carlo dropout passes")
    mc_masks: str = "consistent"
    seed: int = bounded(0, 0, 2**32, high_open=True, note="numpy and torch seeds")

    def validate(self) -> None:
        if self.mc_masks not in MASK_MODES:
            raise ConfigError(f"al.mc_masks: unknown value {self.mc_masks!r}; valid choices: {', '.join(MASK_MODES)}")

    def check_pool(self, pool_size: int, dataset: str) -> None:
        """Budget against the pool: raise before any work if the queries cannot be served."""
        need = self.initial_size + self.rounds * self.query_size
        if self.initial_size > pool_size:
            raise ConfigError(
                f"al.initial_size: {self.initial_size} is larger than the pool of {dataset} ({pool_size} samples)"
            )
        if self.query_size > pool_size - self.initial_size:
            raise ConfigError(
                f"al.query_size: {self.query_size} is larger than the unlabeled pool of {dataset} "
                f"({pool_size - self.initial_size} samples after the initial set)"
            )
        if need > pool_size:
            raise ConfigError(
                f"al.rounds: {self.rounds} rounds of {self.query_size} after {self.initial_size} initial labels "
                f"need {need} samples; the pool of {dataset} has {pool_size}"
            )


@dataclass
class StrategyConfig:
    """Query strategy by registry name and its parameters."""

    name: str = "margin"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackingConfig:
    """MLflow: ``uri`` (default a SQLite file in the working directory, or ``http://host:port``),
    experiment name, optional run name and extra tags. ``enabled: false`` tracks nothing.
    ``log_model`` logs the final task model as an MLflow PyTorch model (``runs:/<id>/model``);
    ``register_model`` (a name) also registers it in the model registry."""

    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "autoal"
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    log_model: bool = True
    register_model: str | None = None

    def validate(self) -> None:
        """What MLflow would refuse only once the run has started (after creating the store):
        the experiment's name (not blank, at most :data:`MAX_EXPERIMENT_NAME` characters) and
        the tags (MLflow's key rules, values it keeps whole)."""
        import posixpath
        import re

        name = self.experiment
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            raise ConfigError(f"tracking.experiment: expected a name (not empty or blank); got {name!r:.80}")
        if len(name) > MAX_EXPERIMENT_NAME:
            raise ConfigError(
                f"tracking.experiment: at most {MAX_EXPERIMENT_NAME} characters (the MLflow store's "
                f"experiments.name column); got {len(name)}"
            )
        if not isinstance(self.tags, dict):
            return  # RunConfig.validate names it
        for k, v in self.tags.items():
            key = str(k)
            if (
                not key
                or len(key) > MAX_TAG_KEY
                or not re.fullmatch(r"[/\w.\- :]+", key)
                or posixpath.normpath(key) != key
                or key.startswith(("/", ".."))
            ):
                raise ConfigError(
                    f"tracking.tags.{key[:80]}: not a valid MLflow tag key (1 to {MAX_TAG_KEY} letters, "
                    "digits, '_', '-', '.', ' ', ':' or '/', not a path that resolves to another name)"
                )
            if isinstance(v, str) and len(v) > MAX_TAG_VALUE:
                raise ConfigError(
                    f"tracking.tags.{key}: at most {MAX_TAG_VALUE} characters (MLflow truncates "
                    f"longer values); got {len(v)}"
                )


@dataclass
class ScoringConfig:
    """Where the pool cache is computed: in-process (``local``) or by ``num_actors`` Ray actors,
    each holding ``gpus_per_actor`` GPUs when there are GPUs, else ``num_cpus`` CPUs."""

    executor: str = "local"
    num_actors: int = bounded(2, 1)
    batch_size: int = bounded(1024, 1)
    gpus_per_actor: float = bounded(0.5, 0)
    num_cpus: float = bounded(1.0, 0)

    def validate(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"scoring.executor: unknown executor {self.executor!r}; valid choices: local, ray")


@dataclass
class SettingConfig:
    """The named setting a run belongs to (``conf/setting/<name>.yaml``: a bundle of data set,
    budget, training and model overrides, the unit of the quality matrix). ``name`` labels the
    run (MLflow tag ``setting``, the report's matrix rows); it changes nothing the run computes.
    ``resources`` is what one sweep trial of this setting reserves on Ray (``{CPU: 1, GPU: 0.25}``;
    empty: the sweep's default)."""

    name: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.name is not None and (not self.name or any(c in self.name for c in "/\\ ,=")):
            raise ConfigError(f"setting.name: expected a plain name (no '/', '\\', ' ', ',' or '='); got {self.name!r}")
        if not isinstance(self.resources, dict):
            raise ConfigError(
                f"setting.resources: expected a mapping like {{CPU: 1, GPU: 0.25}}; got {self.resources!r}"
            )
        for k, v in self.resources.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= float(v) <= 1 << 20:
                raise ConfigError(f"setting.resources.{k}: expected a number >= 0; got {v!r}")


#: the default of runtime.num_threads: a fixed number, not "all cores", so that a run gives the same
#: result on any machine and as a sweep trial (which reserves one CPU); see RunConfig.fingerprint
DEFAULT_THREADS = 1


@dataclass
class RuntimeConfig:
    """``device`` (auto/cpu/cuda), torch CPU threads (default 1, the same as a sweep trial's;
    0 = all cores of this machine), run folder root, ``quiet`` (no progress: neither bars nor the
    per-round lines), ``resume`` from the run folder's saved state. The thread count is part of a
    run's identity: torch's CPU kernels split reductions by thread, so 1 and 2 threads give
    different floating-point sums and, over a run, different picks."""

    device: str = "auto"
    num_threads: int = bounded(DEFAULT_THREADS, 0, 4096, note="0 = all cores")
    output_dir: str = "runs"
    quiet: bool = False
    resume: bool = True

    def validate(self) -> None:
        """The device name must parse (whether it exists is checked where the run starts, so that a
        config composed on a CPU-only driver can still name ``cuda``)."""
        if self.device != "auto":
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as e:
                raise ConfigError(
                    f"runtime.device: {self.device!r} is not a device; valid: auto, cpu, cuda, cuda:<index> ({e})"
                ) from None

    def threads(self) -> int:
        """The torch CPU threads the run uses (``num_threads``, or this machine's cores for 0)."""
        import os

        return int(self.num_threads) or (os.cpu_count() or 1)


@public_api
@dataclass
class RunConfig:
    dataset: DataSpec = field(default_factory=DataSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    al: ALConfig = field(default_factory=ALConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    setting: SettingConfig = field(default_factory=SettingConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "RunConfig":
        cfg = build_typed(cls, d or {}, "")  # types, then ranges (autoal.typed_config)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        check_bounds(self)  # every number against its field's range (autoal.bounds)
        self.model.validate()
        self.train.validate()
        self.al.validate()
        self.scoring.validate()
        self.runtime.validate()
        self.setting.validate()
        self.dataset.validate()
        for where, value in (
            ("strategy.params", self.strategy.params),
            ("dataset.options", self.dataset.options),
            ("tracking.tags", self.tracking.tags),
        ):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: must be a mapping; got {type(value).__name__} {value!r}")
        if self.tracking.register_model is not None and (
            not isinstance(self.tracking.register_model, str) or not self.tracking.register_model.strip()
        ):
            raise ConfigError(
                f"tracking.register_model: expected a registered-model name or null; got "
                f"{self.tracking.register_model!r}"
            )
        for where, value in (("dataset.path", self.dataset.path), ("tracking.run_name", self.tracking.run_name)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{where}: expected a string or null; got {value!r}")
        name = self.tracking.run_name
        if name is not None and (
            not name.strip() or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name or len(name) > 200
        ):
            raise ConfigError(
                f"tracking.run_name: expected a plain name (no '/', '\\' or '..', at most 200 "
                f"characters): it names a folder inside runtime.output_dir; got {name!r}"
            )
        for k, v in self.tracking.tags.items():
            if not isinstance(k, str) or not isinstance(v, (str, int, float, bool)) or isinstance(v, float) and v != v:
                raise ConfigError(f"tracking.tags.{k}: expected a string (or number) value; got {v!r}")
        self.tracking.validate()
        out = user_path(str(self.runtime.output_dir))
        blocker = file_in_the_way(out)
        if blocker is not None:
            what = "is a file" if blocker == out.absolute() else f"cannot be created: {blocker} is a file"
            raise ConfigError(f"runtime.output_dir: {out} {what}; expected a folder (it is created if missing)")
        root = user_path(str(self.dataset.root))
        if root.exists() and not root.is_dir():
            raise ConfigError(f"dataset.root: {root} is a file; expected the folder that holds (or receives) the data")
        self._check_dataset_path()
        _check_dataset_options(self.dataset.options)

    def _check_dataset_path(self) -> None:
        """``dataset.path`` of the loaders that read one: a folder for ``folder``, a file for
        ``npz`` and ``table`` (a path that does not exist yet is the loader's to report)."""
        if self.dataset.path is None or self.dataset.name not in ("folder", "npz", "table"):
            return
        path = user_path(self.dataset.path)
        if self.dataset.name == "folder" and path.exists() and not path.is_dir():
            raise ConfigError(
                f"dataset.path: {path} is a file; dataset=folder reads a folder with one sub-folder of images per class"
            )
        if self.dataset.name == "npz" and path.is_dir():
            raise ConfigError(
                f"dataset.path: {path} is a folder; dataset=npz reads one .npz file (x_train, y_train, x_test, y_test)"
            )
        if self.dataset.name == "table" and path.is_dir():
            raise ConfigError(f"dataset.path: {path} is a folder; dataset=table reads one .csv or .parquet file")

    def fingerprint(self) -> str:
        """Hash of everything that changes the sequence of queries: not tracking, not the setting's
        name, not runtime, except the CPU thread count (which changes floating-point sums)."""
        d = self.to_dict()
        for k in ("tracking", "runtime", "setting"):
            d.pop(k)
        if d["model"].get("depth") is None:  # configs without a depth hash as they did before it existed
            d["model"].pop("depth", None)
        d["scoring"] = {"batch_size": d["scoring"]["batch_size"]}
        d["threads"] = self.runtime.threads()
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _check_dataset_options(options: dict[str, Any]) -> None:
    """The ``dataset.options`` that several loaders share, checked before any data is read:
    ``image_size`` (an integer in [2, MAX_IMAGE_SIZE]: a 100000-pixel side would allocate
    hundreds of GiB), ``test_fraction`` (a number in (0, 1)), ``split_seed`` and ``workers``
    (integers >= 0)."""
    import math

    def number(key: str, v: Any, integer: bool) -> float:
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(float(v))
            or (integer and float(v) != int(v))
        ):
            raise ConfigError(f"dataset.options.{key}: expected {'an integer' if integer else 'a number'}; got {v!r}")
        return float(v)

    if options.get("image_size") is not None:
        v = number("image_size", options["image_size"], True)
        if not 2 <= v <= MAX_IMAGE_SIZE:
            raise ConfigError(f"dataset.options.image_size: must lie in [2, {MAX_IMAGE_SIZE}] pixels; got {v:g}")
    if options.get("test_fraction") is not None:
        v = number("test_fraction", options["test_fraction"], False)
        if not 0 < v < 1:
            raise ConfigError(f"dataset.options.test_fraction: must lie in (0, 1); got {v:g}")
    for key in ("split_seed", "workers"):
        if options.get(key) is not None and number(key, options[key], True) < 0:
            raise ConfigError(f"dataset.options.{key}: must be >= 0; got {options[key]!r}")
