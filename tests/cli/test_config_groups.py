"""Every config under conf/ composes and turns into a valid RunConfig (lightning-hydra-template style)."""

from pathlib import Path

import pytest

from autoal.errors import ConfigError
from autoal.paths import conf_dir
from autoal.cli.common import compose, run_config

GROUPS = ["dataset", "model", "train", "al", "strategy", "tracking", "scoring", "runtime", "setting"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((conf_dir() / g).glob("*.yaml"))]


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_group_option_composes(group, option):
    over = [f"{group}={option}"]
    if option in ("folder", "npz", "table"):
        over.append("dataset.path=/tmp/x")
    if option == "table":
        over.append("dataset.options.label=y")
    cfg = run_config(compose(over))
    if group == "strategy":  # a named configuration of a strategy carries the strategy's name
        assert cfg.strategy.name == {"autoal_paper": "autoal"}.get(option, option)
        from autoal.strategies import build_strategy

        built = build_strategy(cfg.strategy.name, **cfg.strategy.params)  # every param a constructor argument
        assert built.name == cfg.strategy.name
    if group == "dataset":
        assert cfg.dataset.name == option
    if group == "setting":  # a setting names itself and selects its data set
        assert cfg.setting.name == option
        assert cfg.dataset.name == {
            "digits": "digits",
            "digits_lt": "digits",
            "digits_lt30": "digits",
            "digits_lt_low": "digits",
            "digits_lt5_low": "digits",
            "digits_lt7_low": "digits",
            "digits_lt3_low": "digits",
            "digits_b20": "digits",
            "digits_lt2_low": "digits",
            "digits_i10": "digits",
            "digits_table": "sklearn",
        }.get(option, "mnist")


def test_dataset_files_choose_a_fitting_model():
    assert run_config(compose(["dataset=cifar10"])).model.name == "resnet18"
    assert run_config(compose(["dataset=digits"])).model.name == "small_cnn"


def test_cli_errors_are_clear():
    from autoal.errors import AutoALError, ConfigError

    with pytest.raises(ConfigError, match="valid keys under al"):
        compose(["al.roudns=3"])
    with pytest.raises(AutoALError, match="dataset.path"):
        compose(["dataset=folder"])
    with pytest.raises(ConfigError, match="^strategy: no option 'nope'; options: albl, autoal, .*margin"):
        compose(["strategy=nope"])
    # Hydra's multi-line messages become one line naming the override or the key
    with pytest.raises(ConfigError, match=r"^'al.rounds=\[': not a valid override"):
        compose(["al.rounds=["])
    with pytest.raises(ConfigError, match=r"^'=3': not a valid override \(no key before '='\)"):
        compose(["=3"])
    with pytest.raises(ConfigError, match=r"^al.rounds: Interpolation key 'nope' not found$"):
        compose(["al.rounds=${nope}"])
    with pytest.raises(
        ConfigError, match=r"^dataset: choose one option of the config group; got \['digits', 'mnist'\]"
    ):
        compose(["dataset=[digits,mnist]"])
    with pytest.raises(ConfigError, match=r"run them with -m"):
        compose(["strategy=margin,entropy"])
    with pytest.raises(ConfigError, match=r"^hydra.run.dir: Hydra's own settings are not used"):
        compose(["hydra.run.dir=x"])
    with pytest.raises(
        ConfigError,
        match=r"^tracking.tags: tracking.tags.team is not one of its keys; .*"
        r"\+tracking.tags.team=VALUE",
    ):
        compose(["tracking.tags={team:vision}"])
    assert compose(["+tracking.tags.team=vision"])["tracking"]["tags"] == {"team": "vision"}
    with pytest.raises(ConfigError, match="strategy margin has no parameters"):
        compose(["strategy=margin", "strategy.params.iters=3"])
    # a misspelt parameter lists the keys of the strategy chosen on the command line
    with pytest.raises(
        ConfigError,
        match=r"strategy.params.iterz: unknown config key; valid keys under "
        r"strategy.params: iters$",
    ):
        compose(["strategy=kmeans", "strategy.params.iterz=3"])


def test_run_pipeline_end_to_end(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [
            sys.executable,
            str(root / "pipelines" / "run.py"),
            "al.rounds=1",
            "train.epochs=5",
            "runtime.quiet=true",
            f"tracking.uri=sqlite:///{tmp_path}/m.db",
            f"runtime.output_dir={tmp_path}/runs",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "AUBC" in out.stdout and "mlflow ui --backend-store-uri" in out.stdout
    bad = subprocess.run(
        [sys.executable, str(root / "pipelines" / "run.py"), "al.query_size=-1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "al.query_size" in bad.stderr and "Traceback" not in bad.stderr


def test_subsampling_keys_override_on_every_dataset_file():
    """The keys are in every conf/dataset file, so overrides need no '+'."""
    cfg = run_config(compose(["dataset.imbalance_ratio=10", "dataset.train_size=500", "dataset.subset_seed=2"]))
    assert (cfg.dataset.imbalance_ratio, cfg.dataset.train_size, cfg.dataset.subset_seed) == (10.0, 500, 2)
    assert cfg.dataset.test_size is None
    for option in sorted(p.stem for p in (conf_dir() / "dataset").glob("*.yaml")):
        over = [f"dataset={option}", "dataset.imbalance_ratio=50", "dataset.test_size=100"]
        if option in ("folder", "npz", "table"):
            over.append("dataset.path=/tmp/x")
        if option == "table":
            over.append("dataset.options.label=y")
        cfg = run_config(compose(over))
        assert cfg.dataset.imbalance_ratio == 50.0 and cfg.dataset.test_size == 100, option


@pytest.mark.parametrize(
    "key, value", [("train_size", 500), ("test_size", 100), ("imbalance_ratio", 10.0), ("subset_seed", 1)]
)
def test_subsampling_keys_change_the_fingerprint(key, value):
    from autoal.config import RunConfig

    base = RunConfig.from_dict({})
    changed = RunConfig.from_dict({"dataset": {key: value}})
    assert changed.fingerprint() != base.fingerprint()
    assert RunConfig.from_dict({"dataset": {key: value}}).fingerprint() == changed.fingerprint()


def _cli(args, tmp_path, timeout=300):
    import subprocess

    env = {**__import__("os").environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        [str(AUTOAL), "run", *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env
    )


AUTOAL = Path(__import__("sys").executable).parent / "autoal"  # the console script of the installed package


def test_autoal_command_lists_its_commands_and_rejects_others(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([str(AUTOAL), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for command in ("run", "sweep", "ablation", "report", "query", "cluster-check"):
        assert re_line(out.stdout, command), out.stdout
    bad = subprocess.run(
        [str(AUTOAL), "runn", "al.rounds=1"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert bad.returncode == 2 and "command: expected one of run, sweep" in bad.stderr and "'runn'" in bad.stderr
    version = subprocess.run(
        [sys.executable, "-m", "autoal", "--version"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert version.returncode == 0 and version.stdout.startswith("autoal 0."), version.stdout + version.stderr
    sweep_help = subprocess.run(
        [str(AUTOAL), "sweep", "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert (
        sweep_help.returncode == 0
        and "usage: autoal sweep" in sweep_help.stdout
        and re_line(sweep_help.stdout, "sweep")
    )
    assert not list(tmp_path.iterdir())


def test_hydra_flags_help_cfg_info(tmp_path):
    import yaml

    out = _cli(["--help"], tmp_path)
    assert out.returncode == 0 and "usage: autoal run" in out.stdout
    assert re_line(out.stdout, "strategy") and "least_confidence" in out.stdout and not re_line(out.stdout, "sweep")
    out = _cli(["--cfg", "job", "strategy=entropy", "al.rounds=3"], tmp_path)
    d = yaml.safe_load(out.stdout)
    assert out.returncode == 0 and d["strategy"]["name"] == "entropy" and d["al"]["rounds"] == 3
    assert run_config(d).al.rounds == 3  # the printed config is a valid run config
    out = _cli(["--info", "strategy=kmeans"], tmp_path)
    assert out.returncode == 0 and "config folder:" in out.stdout and "strategy=kmeans" in out.stdout
    assert "(pkg://autoal.conf)" in out.stdout  # the config groups come from the package
    bad = _cli(["--bogus"], tmp_path)
    assert bad.returncode == 2 and "--bogus: unknown option" in bad.stderr and "Traceback" not in bad.stderr
    assert not list(tmp_path.iterdir())  # none of these wrote anything


def re_line(text: str, group: str) -> bool:
    return any(line.strip().startswith(group + " ") for line in text.splitlines())


@pytest.mark.slow
def test_multirun_is_one_tune_sweep_with_paired_seeds(tmp_path):
    out = _cli(
        [
            "-m",
            "strategy=random,margin",
            "al.seed=0,1",
            "al.rounds=1",
            "al.mc_samples=2",
            "train.epochs=2",
            f"tracking.uri=sqlite:///{tmp_path}/m.db",
            f"runtime.output_dir={tmp_path}/runs",
            f"sweep.storage_path={tmp_path}/ray",
            "sweep.report=false",
            "sweep.num_cpus=2",
        ],
        tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith(("random ", "margin "))]
    trials = {(r[0], r[1]) for r in rows if len(r) > 2 and r[2] == "TERMINATED"}
    assert trials == {("random", "0"), ("random", "1"), ("margin", "0"), ("margin", "1")}, out.stdout
    assert "multirun-" in out.stdout and "mlflow ui --backend-store-uri" in out.stdout
    with pytest.raises(ConfigError, match="no comma-separated values"):
        from autoal.cli.common import multirun_sweep

        multirun_sweep(["al.rounds=2"])
