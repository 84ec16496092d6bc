"""autoal.faults: the crash tests' hooks are off by default, parse their one variable each, and
fire exactly once where asked."""

import pytest

from autoal.errors import ConfigError
from autoal.faults import OnceFault, crash_once, once_from_env, strike


def test_hooks_are_off_without_their_variables(monkeypatch):
    monkeypatch.delenv("AUTOAL_FAULT", raising=False)
    monkeypatch.delenv("AUTOAL_FAULT_ONCE", raising=False)
    assert once_from_env() is None
    strike("train", 0)  # no variable: returns
    monkeypatch.setenv("AUTOAL_FAULT", "score:3")
    strike("train", 3)
    strike("score", 2)  # not this phase and round: returns (the SIGKILL itself is tests/test_resume.py's)
    crash_once(None, 1)


def test_once_fault_parses_and_names_the_variable_when_malformed(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOAL_FAULT_ONCE", f"2:{tmp_path / 'm'}")
    assert once_from_env() == OnceFault(2, str(tmp_path / "m"))
    for bad in ("2", "x:/tmp/m", "2:", ":/tmp/m"):
        monkeypatch.setenv("AUTOAL_FAULT_ONCE", bad)
        with pytest.raises(ConfigError, match="AUTOAL_FAULT_ONCE"):
            once_from_env()


def test_crash_once_fires_once_at_its_round(tmp_path):
    fault = OnceFault(1, str(tmp_path / "marker"))
    crash_once(fault, 0)
    assert not (tmp_path / "marker").exists()
    with pytest.raises(RuntimeError, match="injected test fault after round 1"):
        crash_once(fault, 1)
    assert (tmp_path / "marker").exists()
    crash_once(fault, 1)  # the retried attempt goes on
