"""Structure changes keep behaviour: every strategy autoal ships picks the same labeled set, in
the same rounds, and reaches the same AUBC on digits as recorded in
``tests/reference/picks_digits.json`` (issue 25's "done when"). A change that is meant to move picks
regenerates the record on purpose, and says so in its commit:

    python tests/strategies/test_picks_unchanged.py --update

The floats depend on the machine as well as the code: torch's version and the CPU's kernels (two
machines that both report AVX-512, an AMD EPYC and the one the first record was made on, order
some sums differently). The file keeps one record per kind of machine; a test checks against the
record made on its kind of machine and is skipped, saying so, on a machine with none (run
``--update`` there to add one). ``--update`` rewrites this machine's record and drops, from the
other machines' records, the entries of every option whose picks it saw move: they are stale
until regenerated there.
"""

from __future__ import annotations

import json
import platform as _platform
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


def cpu_model() -> str:
    """The CPU's vendor, family and model (``/proc/cpuinfo`` on Linux, else what the platform
    module says), e.g. ``AuthenticAMD 25/17``."""
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():
                break  # the first processor is enough
        return f"{fields['vendor_id']} {fields['cpu family']}/{fields['model']}"
    except (OSError, KeyError):
        return _platform.processor() or _platform.machine()


def platform() -> dict[str, str]:
    """What the recorded floats depend on besides the code: torch's version, the CPU kernels it
    dispatches to (AVX2 and AVX-512 sum in different orders) and the CPU itself."""
    import torch

    return {
        "torch": torch.__version__.split("+")[0],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu_model(),
    }


def _records() -> list[dict]:
    return json.loads(REFERENCE.read_text())["records"]


def matching_record(records: list[dict], here: dict[str, str]) -> dict | None:
    """The record made on this kind of machine (every platform key equal), or None. A record made
    elsewhere is never used: two CPUs with the same kernel set can still sum differently."""
    return next((r for r in records if r["platform"] == here), None)


def _record() -> dict:
    here = platform()
    record = matching_record(_records(), here)
    if record is None:
        pytest.skip(
            f"picks recorded on {[r['platform'] for r in _records()]}, this machine is {here}; "
            "python tests/strategies/test_picks_unchanged.py --update adds its record"
        )
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


def updated(records: list[dict], here: dict[str, str], new: dict[str, dict]) -> list[dict]:
    """``records`` with this machine's record replaced by ``new`` (added if it had none, first in
    the list), and the entries of the options whose picks moved here against the old record
    dropped from the others'. With no old record of this machine nothing is known to have moved."""
    old = matching_record(records, here)
    moved = set() if old is None else {o for o in new if old["picks"].get(o) != new[o]}
    others = [
        {"platform": r["platform"], "picks": {o: v for o, v in r["picks"].items() if o not in moved}}
        for r in records
        if r["platform"] != here
    ]
    return [{"platform": here, "picks": new}, *others]


def test_every_record_holds_only_strategy_options_and_this_machines_all():
    options = strategy_options()
    records = _records()
    assert records, "the picks reference holds no record"
    for r in records:
        assert set(r["picks"]) <= set(options), f"{r['platform']}: options that no longer exist"
    mine = matching_record(records, platform())
    if mine is not None:
        assert sorted(mine["picks"]) == options


def test_only_a_record_of_this_kind_of_machine_is_used():
    here = {"torch": "2.14.1", "cpu_capability": "AVX512", "cpu": "AuthenticAMD 25/17"}
    amd = {"platform": here, "picks": {"a": 2}}
    other = {"platform": {**here, "cpu": "GenuineIntel 6/143"}, "picks": {"a": 1}}
    assert matching_record([other, amd], here) is amd
    assert matching_record([other, amd], {**here, "cpu": "AuthenticAMD 26/2"}) is None  # same kernels, other CPU
    assert matching_record([other, amd], {**here, "torch": "2.15.0"}) is None


def test_an_update_drops_what_moved_from_the_other_machines_records():
    here = {"torch": "2.14.1", "cpu_capability": "AVX512", "cpu": "AuthenticAMD 25/17"}
    intel = {"platform": {**here, "cpu": "GenuineIntel 6/143"}, "picks": {"a": 1, "b": 1}}
    mine = {"platform": here, "picks": {"a": 2, "b": 2}}
    out = updated([intel, mine], here, {"a": 2, "b": 3})  # b moved here: Intel's b is stale
    assert out == [{"platform": here, "picks": {"a": 2, "b": 3}}, {"platform": intel["platform"], "picks": {"a": 1}}]
    fresh = updated([intel], here, {"a": 5, "b": 5})  # a first record here: nothing known to have moved
    assert fresh[1] == intel and fresh[0]["picks"] == {"a": 5, "b": 5}


@pytest.mark.parametrize("option", strategy_options())
def test_picks_and_aubc_unchanged(option, tmp_path):
    record = _record()
    if option not in record:
        pytest.skip(f"{option}: its picks moved on another machine and were not recorded on this one")
    want = record[option]
    got = picks(option, tmp_path)
    assert got["round"] == want["round"]
    assert got["labeled"] == want["labeled"], f"{option}: the labeled set moved"
    assert got["aubc"] == pytest.approx(want["aubc"], abs=1e-9)
    assert got["final_accuracy"] == pytest.approx(want["final_accuracy"], abs=1e-9)


def write_reference(records: list[dict]) -> None:
    """One option a line, so that a diff shows which strategies' picks moved."""
    blocks = []
    for r in records:
        lines = [f"   {json.dumps(o)}: {json.dumps(v)}" for o, v in r["picks"].items()]
        blocks.append(f' {{"platform": {json.dumps(r["platform"])},\n  "picks": {{\n' + ",\n".join(lines) + "\n  }}")
    REFERENCE.write_text('{"records": [\n' + ",\n".join(blocks) + "\n]}\n")


if __name__ == "__main__":  # regenerate this machine's record (on purpose only)
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/strategies/test_picks_unchanged.py --update")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        new = {o: picks(o, Path(d)) for o in strategy_options()}
    records = updated(_records(), platform(), new)
    write_reference(records)
    print(f"wrote {REFERENCE}: {len(new)} strategy options on {platform()}; {len(records)} machine(s)")
