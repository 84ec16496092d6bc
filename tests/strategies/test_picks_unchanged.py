"""Structure changes keep behaviour: every strategy autoal ships picks the same labeled set, in
the same rounds, and reaches the same AUBC on digits as recorded in
``tests/reference/picks_digits.json`` (issue 25's "done when"). A change that is meant to move picks
regenerates the record on purpose, and says so in its commit:

    python tests/strategies/test_picks_unchanged.py --update
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "picks_digits.json"
#: a short digits run: 20 initial labels, 2 rounds of 10, 10 epochs a round, one torch thread
OVERRIDES = [
    "setting=digits",
    "al.rounds=2",
    "train.epochs=10",
    "tracking.enabled=false",
    "runtime.resume=false",
    "runtime.quiet=true",
]


def platform() -> dict[str, str]:
    """What the recorded floats depend on besides the code: torch's version and the CPU kernels
    it dispatches to (AVX2 and AVX-512 sum in different orders)."""
    import torch

    return {"torch": torch.__version__.split("+")[0], "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def _record() -> dict:
    record = json.loads(REFERENCE.read_text())
    if record["platform"] != platform():
        pytest.skip(f"picks recorded on {record['platform']}, this machine is {platform()}")
    return record["picks"]


def strategy_options() -> list[str]:
    from autoal.paths import conf_dir

    return sorted(p.stem for p in (conf_dir() / "strategy").glob("*.yaml"))


def picks(option: str, output_dir: Path) -> dict:
    """One short digits run of ``strategy=<option>``: its labeled ids with the round each arrived
    in, and its AUBC and final accuracy."""
    from autoal.cli.common import compose, run_config
    from autoal.loop import ActiveLearningLoop

    cfg = run_config(compose([f"strategy={option}", *OVERRIDES, f"runtime.output_dir={output_dir}"]))
    r = ActiveLearningLoop(cfg).run()
    order = sorted(range(len(r.labeled)), key=lambda i: (int(r.labeled_round[i]), int(r.labeled[i])))
    return {
        "labeled": [int(r.labeled[i]) for i in order],
        "round": [int(r.labeled_round[i]) for i in order],
        "aubc": float(r.aubc),
        "final_accuracy": float(r.final_accuracy),
    }


def test_the_reference_covers_every_strategy_option():
    assert sorted(json.loads(REFERENCE.read_text())["picks"]) == strategy_options()


@pytest.mark.parametrize("option", strategy_options())
def test_picks_and_aubc_unchanged(option, tmp_path):
    want = _record()[option]
    got = picks(option, tmp_path)
    assert got["round"] == want["round"]
    assert got["labeled"] == want["labeled"], f"{option}: the labeled set moved"
    assert got["aubc"] == pytest.approx(want["aubc"], abs=1e-9)
    assert got["final_accuracy"] == pytest.approx(want["final_accuracy"], abs=1e-9)


if __name__ == "__main__":  # regenerate the record (on purpose only)
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/strategies/test_picks_unchanged.py --update")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        record = {"platform": platform(), "picks": {o: picks(o, Path(d)) for o in strategy_options()}}
    lines = [f" {json.dumps(o)}: {json.dumps(v)}" for o, v in record["picks"].items()]
    REFERENCE.write_text(
        '{"platform": ' + json.dumps(record["platform"]) + ',\n"picks": {\n' + ",\n".join(lines) + "\n}}\n"
    )
    print(f"wrote {REFERENCE} ({len(record['picks'])} strategy options)")
