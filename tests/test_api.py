"""autoal.run / autoal.query: the README's example runs as written; bad input is a clear error."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autoal
from autoal.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent


def _readme_example(which: int = 0) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## As a library") :]
    section = section[: section.index("\n## ", 3)]
    return re.findall(r"```python\n(.*?)```", section, re.S)[which]


def test_readme_library_example_runs_as_written(tmp_path):
    code = _readme_example()
    assert len(code.strip().splitlines()) <= 12
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    m = re.search(r"AUBC (0\.\d+), final accuracy (0\.\d+)", out.stdout)
    assert m and 0.4 < float(m.group(2)) <= 1.0, out.stdout  # 50 labels of digits: well above chance (0.1)
    assert re.search(r"label next: \[\s*\d+(\s+\d+){4}\s*\]", out.stdout), out.stdout
    assert list((tmp_path / "runs").glob("arrays-margin-seed0-*/state.json"))


def test_readme_own_model_example_runs_as_written(tmp_path):
    code = _readme_example(1)
    assert "nn.Sequential" in code and len(code.strip().splitlines()) <= 10
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    m = re.search(r"AUBC (0\.\d+), final accuracy (0\.\d+)", out.stdout)
    assert m and float(m.group(2)) > 0.5, out.stdout  # 110 labels of digits with one's own CNN
    assert len(list((tmp_path / "runs").glob("arrays-bald-seed0-*/state.json"))) == 1


def test_query_matches_the_strategy_and_checks_its_input():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=50)
    top2 = np.sort(probs, 1)[:, -2:]
    margin_order = np.argsort(top2[:, 1] - top2[:, 0], kind="stable")
    assert set(autoal.query(probs, 3, "margin").tolist()) == set(margin_order[:3].tolist())
    emb = rng.normal(size=(50, 8))
    picks = autoal.query(probs, 5, "kmeans", embeddings=emb)
    assert len(set(picks.tolist())) == 5
    with pytest.raises(DataError, match="probs"):
        autoal.query(probs * 2, 3)
    with pytest.raises(ConfigError, match="embeddings"):
        autoal.query(probs, 3, "coreset")
    with pytest.raises(ConfigError, match="autoal.run"):
        autoal.query(probs, 3, "bald")
    with pytest.raises(ConfigError, match="n must lie"):
        autoal.query(probs, 0)


def test_run_rejects_data_that_is_not_four_arrays(tmp_path):
    with pytest.raises(DataError, match=r"\(x_train, y_train, x_test, y_test\)"):
        autoal.run((np.zeros((4, 8, 8)), np.zeros(4)), output_dir=str(tmp_path))


def test_run_checks_arrays_like_an_npz_file(tmp_path):
    x, y = np.zeros((10, 8, 8), dtype=np.uint8), np.arange(10) % 2
    with pytest.raises(DataError, match=r"autoal.run: data has 10 images in x_train but 9 labels"):
        autoal.run((x, y[:9], x, y), output_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"autoal.run: data has negative labels"):
        autoal.run((x, y - 1, x, y), output_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_run_takes_a_strategy_object_that_is_not_registered(tmp_path):
    """One's own strategy object, under a name the registry does not know, runs: the checks
    before work look names up only for what the config names (autoal run --check), not for
    objects passed in."""
    from sklearn.datasets import load_digits

    from autoal.strategies.base import ScoreStrategy

    class LowestTopProbability(ScoreStrategy):
        name = "my_lowest_top_probability"

        def compute_score(self, cache):
            return -cache.probs.max(1).values

    d = load_digits()
    x, y = (d.images / 16).astype("float32")[:, None], d.target
    result = autoal.run(
        (x[:1200], y[:1200], x[1200:], y[1200:]),
        strategy=LowestTopProbability(),
        rounds=1,
        query_size=10,
        epochs=2,
        output_dir=str(tmp_path),
    )
    assert len(result.history) == 2 and len(result.labeled) == 30
    assert result.run_dir.name.startswith("arrays-my_lowest_top_probability-seed0")


_PROGRESS = """
import sys
import numpy as np
from sklearn.datasets import load_digits
import autoal
x, y = load_digits(return_X_y=True)
im = x.reshape(-1, 8, 8) / 16
kw = {} if sys.argv[1] == 'default' else {'progress': sys.argv[1] == 'on'}
autoal.run((im[:600], y[:600], im[600:800], y[600:800]), 'margin', rounds=1, epochs=2, output_dir=sys.argv[2], **kw)
"""


@pytest.mark.parametrize(
    "env, arg, shown", [("bar", "default", "bar"), ("", "default", None), ("", "on", "lines"), ("bar", "off", None)]
)
def test_library_runs_show_progress_on_a_terminal_only_by_default(tmp_path, env, arg, shown):
    """autoal.run shows progress where a bar can be drawn (a terminal or a notebook; here
    AUTOAL_PROGRESS=bar stands for one) and nothing in a pipe, unless progress=True/False says."""
    import os

    environ = {k: v for k, v in os.environ.items() if k != "AUTOAL_PROGRESS"}
    if env:
        environ["AUTOAL_PROGRESS"] = env
    out = subprocess.run(
        [sys.executable, "-c", _PROGRESS, arg, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    if shown is None:
        assert "round" not in out.stderr, out.stderr[-2000:]
    elif shown == "bar":
        assert "rounds:" in out.stderr and "%|" in out.stderr, out.stderr[-2000:]  # a tqdm bar
    else:
        assert "round 1/1" in out.stderr and "%|" not in out.stderr, out.stderr[-2000:]  # plain lines


def test_progress_must_be_a_bool_or_none(tmp_path):
    with pytest.raises(ConfigError, match="progress"):
        autoal.run(
            (np.zeros((4, 8, 8)), np.zeros(4), np.zeros((2, 8, 8)), np.zeros(2)),
            progress="yes",
            output_dir=str(tmp_path),
        )
