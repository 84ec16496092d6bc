"""Issue 25, "one typed-config path": the run config, strategy parameters, the sweep spec and the
labeling config are dataclasses whose fields declare types and ranges, built and checked by
:mod:`autoal.typed_config`; the same mistake reads the same in every section, and
``autoal run --check`` refuses a strategy parameter out of its declared range with the line
that ``autoal run`` prints."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoal.bounds import bound_of, bounded, choice
from autoal.config import RunConfig
from autoal.errors import ConfigError
from autoal.labeling import LabelingConfig
from autoal.platform.sweep import SweepSpec
from autoal.strategies import PoolStrategy
from autoal.strategies.registry import STRATEGIES, build_strategy, params_type_of, strategy_defaults, strategy_names
from autoal.typed_config import build_typed, check_typed, field_type

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_invoke import invoke  # noqa: E402 - autoal <args> in this process, a traceback fails


@dataclass
class _Params:
    k: int = bounded(20, 1, note="neighbours")
    temperature: float = bounded(1.0, 0, low_open=True)
    metric: str = choice("cosine", ("cosine", "euclidean"))
    tags: list[str] | None = None


class _Mine(PoolStrategy):
    params_type = _Params

    def __init__(
        self, k: int = 20, temperature: float = 1.0, metric: str = "cosine", tags: list[str] | None = None
    ) -> None:
        self.k, self.temperature, self.metric, self.tags = k, temperature, metric, tags

    def select_positions(self, cache, n, rng, labeled=None):
        return rng.permutation(len(cache))[:n]


@pytest.fixture
def mine(monkeypatch):
    STRATEGIES.discover()
    monkeypatch.setitem(STRATEGIES._items, "mine", _Mine)
    return "mine"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"k": 0}, r"^strategy.params.k: must be >= 1 \(neighbours\); got 0$"),
        ({"k": 2.5}, r"^strategy.params.k: expected an integer; got 2.5$"),
        ({"k": "abc"}, r"^strategy.params.k: expected an integer; got 'abc'$"),
        ({"temperature": 0.0}, r"^strategy.params.temperature: must be > 0; got 0.0$"),
        ({"temperature": float("inf")}, r"^strategy.params.temperature: expected a finite number; got inf$"),
        ({"metric": "l1"}, r"^strategy.params.metric: expected one of cosine, euclidean; got 'l1'$"),
        ({"tags": "a"}, r"^strategy.params.tags: expected a list; got 'a'$"),
        ({"k": None}, r"^strategy.params.k: expected an integer; got null$"),
        ({"kk": 3}, r"^strategy \(mine\): unknown parameter\(s\) kk; valid parameters: k, temperature, metric, tags$"),
    ],
)
def test_a_declared_params_type_is_typed_and_range_checked(mine, params, message):
    with pytest.raises(ConfigError, match=message):
        build_strategy(mine, **params)


def test_values_reach_the_constructor_converted_to_the_fields_types(mine):
    s = build_strategy(mine, k=3.0, temperature=2, tags=("a",))
    assert (s.k, type(s.k), s.temperature, type(s.temperature), s.tags) == (3, int, 2.0, float, ("a",))
    assert strategy_defaults(mine) == {"k": 20, "temperature": 1.0, "metric": "cosine", "tags": None}


def test_without_params_type_the_constructor_signature_is_typed_alike():
    with pytest.raises(ConfigError, match=r"^strategy.params.iters: expected an integer; got 'abc'$"):
        build_strategy("kmeans", iters="abc")
    with pytest.raises(ConfigError, match=r"^strategy.params.lr: expected a number; got 'x'$"):
        build_strategy("lpl", lr="x")  # float | None: null or a number
    build_strategy("lpl", lr=None)


def test_built_in_params_types_match_their_constructors_and_declare_ranges():
    declared = [n for n in strategy_names() if getattr(STRATEGIES.get(n), "params_type", None) is not None]
    assert {"typiclust", "cluster_margin", "coreset"} <= set(declared)
    for name in ("typiclust", "cluster_margin", "coreset"):
        signature = {k: p.default for k, p in inspect.signature(STRATEGIES.get(name)).parameters.items()}
        assert strategy_defaults(name) == signature, name
        fields = dataclasses.fields(params_type_of(name))
        assert all(bound_of(f) is not None for f in fields if field_type(f)[0] in (int, float)), name
    with pytest.raises(ConfigError, match=r"^strategy.params.shortlist_factor: must be >= 1 .*; got 0.5$"):
        build_strategy("cluster_margin", shortlist_factor=0.5)
    with pytest.raises(ConfigError, match=r"^strategy.params.chunk: must be >= 1 .*; got 0$"):
        build_strategy("coreset", chunk=0)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: RunConfig.from_dict({"al": {"rounds": -1}}), r"^al.rounds: must lie in \[0, 100000\]; got -1$"),
        (lambda: SweepSpec.from_dict({"num_samples": 0}), r"^sweep.num_samples: must lie in \[1, 10000\]; got 0$"),
        (
            lambda: LabelingConfig.from_dict({"project": "p", "image_size": 2}),
            r"^labeling.image_size: must lie in \[4, 1024\] \(pixels\); got 2$",
        ),
        (lambda: RunConfig.from_dict({"al": {"rounds": "x"}}), r"^al.rounds: expected an integer; got 'x'$"),
        (lambda: SweepSpec.from_dict({"max_failures": "x"}), r"^sweep.max_failures: expected an integer; got 'x'$"),
        (
            lambda: LabelingConfig.from_dict({"project": "p", "channels": "x"}),
            r"^labeling.channels: expected an integer; got 'x'$",
        ),
        (lambda: SweepSpec.from_dict({"nmae": 1}), r"^sweep.nmae: unknown config key; valid keys under sweep: name, "),
        (lambda: LabelingConfig.from_dict({"colour": 1}), r"^labeling.colour: unknown config key; valid keys under "),
        (
            lambda: SweepSpec.from_dict({"scheduler": "hyperband"}),
            r"^sweep.scheduler: expected one of none, asha; got 'hyperband'$",
        ),
        (
            lambda: LabelingConfig.from_dict({"project": "p", "channels": 2}),
            r"^labeling.channels: expected one of 1, 3 \(1: grayscale, 3: RGB\); got 2$",
        ),
        (lambda: SweepSpec.from_dict({"checkpoint": "yes"}), r"^sweep.checkpoint: expected true or false; got 'yes'$"),
        (
            lambda: LabelingConfig.from_dict({"project": "p", "allow_partial": "yes"}),
            r"^labeling.allow_partial: expected true or false; got 'yes'$",
        ),
    ],
)
def test_every_section_says_the_same_mistake_the_same_way(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_a_spec_built_in_code_meets_the_same_rules():
    spec = SweepSpec.from_dict({"seeds": 3, "space": None, "num_samples": 2.0})
    assert spec.seeds == [0, 1, 2] and spec.space == {} and spec.num_samples == 2
    spec.worker_niceness = 40
    with pytest.raises(ConfigError, match=r"^sweep.worker_niceness: must lie in \[-20, 19\]"):
        spec.validate()
    cfg = LabelingConfig(project="p", image_size=8.0)
    check_typed(cfg, "labeling.")
    assert cfg.image_size == 8 and type(cfg.image_size) is int
    with pytest.raises(ConfigError, match=r"^x.k: must be >= 1"):
        build_typed(_Params, {"k": 0}, "x.")


def test_run_check_reports_a_declared_range_as_the_run_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["strategy=typiclust", "strategy.params.k_nn=0", "tracking.enabled=false"]
    code, _, err = invoke(["run", "--check", *args])
    assert code == 2 and err.count("\n") == 1 and "strategy.params.k_nn: must be >= 1" in err, err
    assert invoke(["run", *args])[::2] == (code, err)
    assert list(tmp_path.iterdir()) == []
