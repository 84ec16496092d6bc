"""A user's own nn.Module as the task model (autoal.models.ModuleAdapter): the contract is
checked before training, every round trains a fresh seeded copy, MC dropout, stage maps and the
look-ahead's FitNet work on it, and the model is part of the run's identity."""

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import autoal
from autoal.config import RunConfig
from autoal.data.files import dataset_from_arrays
from autoal.errors import ConfigError, StateError
from autoal.loop import ActiveLearningLoop
from autoal.models import ModuleAdapter, new_like


def _net(width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, 10),
    )


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    im = x.reshape(-1, 8, 8) / 16
    return im[:1300], y[:1300], im[1300:], y[1300:]


def test_own_module_learns_and_is_left_untouched(digits, tmp_path):
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = autoal.run(
        digits, "bald", rounds=2, model=net, epochs=150, output_dir=str(tmp_path), config={"al": {"mc_samples": 50}}
    )
    assert max(h["accuracy"] for h in r.history) > 0.3, r.history  # 20-40 labels of digits; chance is 0.1
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the caller's module is a template
    again = autoal.run(
        digits,
        "bald",
        rounds=2,
        model=_net(),
        epochs=150,
        output_dir=str(tmp_path),
        config={"al": {"mc_samples": 50}, "runtime": {"resume": False}},
    )
    assert again.run_dir == r.run_dir  # same architecture, same config: the same run
    assert [h["accuracy"] for h in again.history] == [h["accuracy"] for h in r.history]  # seeded fresh copies
    assert again.labeled.tolist() == r.labeled.tolist()


def test_the_model_is_part_of_the_run_identity(digits, tmp_path):
    a = autoal.run(digits, "margin", rounds=1, model=_net(8), epochs=5, output_dir=str(tmp_path))
    b = autoal.run(digits, "margin", rounds=1, model=_net(12), epochs=5, output_dir=str(tmp_path))
    c = autoal.run(digits, "margin", rounds=1, model="small_cnn", epochs=5, output_dir=str(tmp_path))
    assert len({a.run_dir, b.run_dir, c.run_dir}) == 3
    ds = dataset_from_arrays("arrays", *digits, where="data", source="arrays")
    cfg = RunConfig.from_dict(
        {
            "al": {"rounds": 1},
            "train": {"epochs": 5},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True},
        }
    )
    with pytest.raises(StateError, match=r"another model \(saved: .*architecture_sha256"):
        ActiveLearningLoop(cfg, dataset=ds, model=_net(12), run_dir=a.run_dir).run()


def test_lookahead_fitnet_and_stage_maps_on_an_adapted_module(digits, tmp_path):
    r = autoal.run(digits, "autoal", rounds=1, model=_net(), epochs=20, output_dir=str(tmp_path))
    assert "fitnet/accuracy_v" in r.history[0], r.history[0]  # the FitNet is a fresh copy of the user's module
    staged = ModuleAdapter(_net(), stages=["2", "5"])
    r = autoal.run(digits, "lpl", rounds=1, model=staged, epochs=10, output_dir=str(tmp_path))
    assert len(r.labeled) == 30
    with pytest.raises(ConfigError, match="stage submodules"):
        autoal.run(digits, "lpl", rounds=1, model=_net(), epochs=10, output_dir=str(tmp_path / "x"))


def test_fresh_copies_are_seeded_and_reinit_is_optional():
    a = ModuleAdapter(_net())
    torch.manual_seed(3)
    w1 = a.fresh().fc.weight.clone()
    w2 = new_like(a, 3).fc.weight
    assert torch.equal(w1, w2) and not torch.equal(w1, a.fc.weight)
    emb = torch.randn(6, a.embedding_dim)
    mc = a.mc_summary(emb, 30, generator=torch.Generator().manual_seed(0))
    assert mc.samples == 30 and float(mc.std_probs.max()) > 1e-3  # dropout in front of the head: MC variance
    assert float(ModuleAdapter(_net(), dropout=0.0).mc_summary(emb, 30).std_probs.max()) == 0.0
    kept = ModuleAdapter(_net(), reinit=False)
    assert torch.equal(new_like(kept, 5).fc.weight, kept.fc.weight)
    assert "weights_sha256" in kept.identity() and "weights_sha256" not in a.identity()


def test_contract_errors_name_what_is_wrong(digits, tmp_path):
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ConfigError, match="no nn.Linear head"):
        ModuleAdapter(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()))
    with pytest.raises(ConfigError, match="'0'.*found a Conv2d"):
        ModuleAdapter(_net(), head="0")
    with pytest.raises(ConfigError, match="'nope' name no submodule"):
        ModuleAdapter(_net(), stages=["nope"])
    with pytest.raises(ConfigError, match="must be the module's last layer"):
        ModuleAdapter(nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Softmax(1))).probe(x)
    with pytest.raises(ConfigError, match=r"must return an \(N, 64\) embedding"):
        ModuleAdapter(nn.Sequential(nn.Linear(8, 64), nn.Linear(64, 10))).probe(x)
    with pytest.raises(ConfigError, match="has 3 outputs; the data set 'arrays' has 10 classes"):
        autoal.run(digits, model=nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="model name or a torch.nn.Module"):
        autoal.run(digits, model=3, output_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())  # refused before any run folder exists


def test_the_trained_model_comes_back_as_the_users_own_module(digits, tmp_path):
    """RunResult.model is the user's module class with the trained weights (eval mode, no adapter
    dropout) and computes the adapter's eval logits; final_model.pt holds its state dict under the
    module's own keys, so a fresh copy of the user's module loads it strictly; a rerun of the
    finished run returns the same model from the file."""
    import copy

    net = _net(8)
    r = autoal.run(digits, "margin", rounds=1, model=net, epochs=5, output_dir=str(tmp_path))
    assert type(r.model) is nn.Sequential and not r.model.training
    assert not any(isinstance(m, nn.Dropout) for m in r.model.modules())
    saved = torch.load(r.run_dir / "final_model.pt", weights_only=True)
    assert set(saved) == set(net.state_dict())  # "0.weight", "8.bias", ...: no body./fc. prefixes
    fresh = copy.deepcopy(net)
    fresh.load_state_dict(saved)  # strict
    loop = ActiveLearningLoop(
        RunConfig.from_dict({"tracking": {"enabled": False}}),
        dataset=dataset_from_arrays("arrays", *digits, where="test", source="test"),
        model=net,
    )
    xt = loop.dataset.eval_transform(loop.dataset.x_test[:16])
    adapted = loop.learner.new_model(0)
    adapted.load_user_state_dict(saved)
    with torch.no_grad():
        want = adapted.eval()(xt)
        assert torch.allclose(r.model(xt), want, atol=1e-5) and torch.allclose(fresh.eval()(xt), want, atol=1e-5)
        # the accuracy of the returned model on the test split is the run's final accuracy
        acc = (
            (r.model(loop.dataset.eval_transform(loop.dataset.x_test)).argmax(1) == loop.dataset.y_test).float().mean()
        )
    assert abs(float(acc) - r.final_accuracy) < 1e-6
    again = autoal.run(digits, "margin", rounds=1, model=_net(8), epochs=5, output_dir=str(tmp_path))
    assert again.run_dir == r.run_dir
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), r.model.state_dict().values()))


def test_the_user_state_dict_round_trips_through_the_adapter():
    adapter = ModuleAdapter(_net(4), dropout=0.2)
    keys = adapter.user_state_dict()
    assert set(keys) == set(_net(4).state_dict())
    other = ModuleAdapter(_net(4), dropout=0.2).fresh()
    other.load_user_state_dict(keys)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), adapter.state_dict().values()))
    with pytest.raises(RuntimeError):  # strict: a key of another module is refused
        other.load_user_state_dict({**keys, "extra.weight": torch.zeros(1)})


def test_built_in_models_come_back_too(tmp_path):
    from autoal.loop import run_experiment
    from autoal.models import Backbone

    r = run_experiment(
        RunConfig.from_dict(
            {
                "al": {"rounds": 0},
                "train": {"epochs": 1},
                "tracking": {"enabled": False},
                "runtime": {"output_dir": str(tmp_path), "quiet": True},
            }
        )
    )
    assert isinstance(r.model, Backbone) and not r.model.training
    saved = torch.load(r.run_dir / "final_model.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in r.model.state_dict().items())
