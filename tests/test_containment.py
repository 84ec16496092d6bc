"""Containment that follows links (issue 23): every path autoal writes, deletes or reads in a run
folder, a sweep's storage or a labeling project lies inside its root once symbolic links and ``..``
are resolved. Each case is tried with an absolute link, a relative link through ``..`` and (where a
path is given as text) a ``..`` path; a refusal is one named error before anything changes, and the
outside folder is byte-for-byte and mtime-for-mtime what it was. A root that is itself a link the
user made (runs/ -> a big disk) keeps working."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from autoal.cli.common import compose, main_guard
from autoal.config import RunConfig
from autoal.containment import check_tree, inside
from autoal.errors import ConfigError, DataError, StateError

TINY = [
    "al.rounds=1",
    "al.initial_size=20",
    "al.query_size=10",
    "al.mc_samples=2",
    "train.epochs=2",
    "train.batch_size=32",
    "strategy=margin",
    "runtime.quiet=true",
    "runtime.num_threads=1",
    "tracking.enabled=false",
]


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``folder`` (links not followed): its size, mtime and content."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[p.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns, p.read_bytes())
    return out


def link(at: Path, target: Path, kind: str) -> None:
    """``at`` -> ``target``: an absolute link, or a relative one through ``..``."""
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(target if kind == "absolute" else Path(os.path.relpath(target, at.parent)))
    if kind == "dotdot":
        assert str(os.readlink(at)).startswith("..")


KINDS = ["absolute", "dotdot"]


# ------------------------------------------------------------------------------ the helper


def test_inside_follows_links_and_dots(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    (root / "a").mkdir(parents=True)
    out.mkdir()
    assert inside(root, "a/../b.json") == (root / "b.json").resolve()
    assert inside(root, root / "a") == (root / "a").resolve()
    assert inside(root, root) == root.resolve()
    with pytest.raises(StateError, match=r"leads to .*out.*outside .*root.*replace the link"):
        inside(root, "../out/x")
    (root / "ln").symlink_to(out)
    with pytest.raises(StateError, match=r"ln/f leads to"):
        inside(root, "ln/f")
    (root / "in").symlink_to(root / "a")  # a link that stays inside is fine
    assert inside(root, "in/f") == (root / "a" / "f").resolve()
    with pytest.raises(ConfigError, match="fix it so"):
        inside(root, "/etc/passwd", error=ConfigError, fix="fix it so")
    # a root that is itself a link: both sides resolved
    (tmp_path / "root-link").symlink_to(root)
    assert inside(tmp_path / "root-link", "a/x") == (root / "a" / "x").resolve()
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(StateError, match="cannot be resolved"):
        inside(root, "loop/x")
    with pytest.raises(StateError, match="cannot be resolved"):
        inside(root, "a\x00b")
    assert inside(root, "~x.png") == root.resolve() / "~x.png"  # a file name, not a home folder


@pytest.mark.parametrize("kind", KINDS)
def test_check_tree_refuses_a_deep_link_leading_outside(tmp_path, kind):
    root, out = tmp_path / "root", tmp_path / "out"
    (root / "a" / "b").mkdir(parents=True)
    out.mkdir()
    (root / "a" / "inner").symlink_to(root / "a" / "b")
    check_tree(root)  # a link inside is fine
    link(root / "a" / "b" / "esc", out / "x.pt", kind)
    with pytest.raises(StateError, match="esc leads to"):
        check_tree(root)
    check_tree(tmp_path / "never-made")


# ------------------------------------------------------------------------------ run folders


def _cfg(tmp_path: Path, output_dir: Path | None = None) -> RunConfig:
    return RunConfig.from_dict(compose([*TINY, f"runtime.output_dir={output_dir or tmp_path / 'runs'}"]))


def _outside(tmp_path: Path) -> Path:
    """A folder that a run must never touch, holding what pruning and round records would hit."""
    out = tmp_path / "outside"
    (out / "ckpts").mkdir(parents=True)
    (out / "rounds").mkdir()
    for name in ("strategy_007.pt", "task_model_003.pt", ".x.tmp"):
        (out / "ckpts" / name).write_bytes(b"not yours")
    (out / "rounds" / "round_000.json").write_text('{"mine": true}')
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("entry", ["rounds", "checkpoints"])
def test_run_refuses_a_run_folder_entry_linked_outside(tmp_path, kind, entry):
    from autoal.loop import ActiveLearningLoop, run_dir_for

    cfg = _cfg(tmp_path)
    out = _outside(tmp_path)
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True)
    link(run_dir / entry, out / ("rounds" if entry == "rounds" else "ckpts"), kind)
    before = snapshot(out)
    with pytest.raises(StateError, match=rf"run folder entry .*{entry} leads to .*outside"):
        ActiveLearningLoop(cfg).run()
    assert snapshot(out) == before
    assert sorted(p.name for p in run_dir.iterdir()) == [entry]  # nothing written in the run folder either


@pytest.mark.parametrize("kind", KINDS)
def test_pruning_and_state_refuse_links_leading_outside(tmp_path, kind):
    """The per-path checks (a link that appears while a run holds its folder): pruning deletes
    nothing outside, the state is neither written nor read through a link."""
    from autoal.state import RunState, checkpoint_path, prune_checkpoints, remove_stale_temps

    run_dir, out = tmp_path / "run", _outside(tmp_path)
    run_dir.mkdir()
    link(run_dir / "checkpoints", out / "ckpts", kind)
    before = snapshot(out)
    with pytest.raises(StateError, match="checkpoints folder"):
        prune_checkpoints(run_dir, {0})
    with pytest.raises(StateError, match="checkpoint"):
        checkpoint_path(run_dir, "strategy", 7)
    (run_dir / "checkpoints").unlink()
    (run_dir / "checkpoints").mkdir()
    link(run_dir / "checkpoints" / "task_model_001.pt", out / "ckpts" / "task_model_003.pt", kind)
    with pytest.raises(StateError, match="task_model_001.pt leads to"):
        prune_checkpoints(run_dir, {0})
    link(run_dir / ".state.json.abc.tmp", out / "ckpts" / ".x.tmp", kind)
    with pytest.raises(StateError, match="temporary file"):
        remove_stale_temps(run_dir)
    link(run_dir / "state.json", out / "rounds" / "round_000.json", kind)
    with pytest.raises(StateError, match="run state"):
        RunState.load(run_dir)
    with pytest.raises(StateError, match="run state"):
        RunState(fingerprint="x").save(run_dir)
    assert snapshot(out) == before


def test_a_runs_root_that_is_a_link_still_works(tmp_path):
    """runs/ -> a big disk (a link the user made): the run writes its folder there."""
    from autoal.loop import run_experiment

    disk = tmp_path / "big-disk" / "runs"
    disk.mkdir(parents=True)
    (tmp_path / "runs").symlink_to(disk)
    res = run_experiment(_cfg(tmp_path, tmp_path / "runs"))
    assert res.run_dir.resolve().parent == disk.resolve()
    assert (res.run_dir / "state.json").is_file() and (res.run_dir / "rounds" / "round_000.json").is_file()
    assert (disk / res.run_dir.name / "final_model.pt").is_file()
    # and a run folder that is itself a link (given as run_dir) resolves the same way
    from autoal.loop import ActiveLearningLoop

    (tmp_path / "this-run").symlink_to(disk / res.run_dir.name)
    again = ActiveLearningLoop(_cfg(tmp_path, tmp_path / "runs"), run_dir=tmp_path / "this-run").run()
    assert again.history == res.history


# ------------------------------------------------------------------------------ sweep.resume

SWEEP_ID = "s-20260101-000000-ab12"


def _sweep(folder: Path, tracking_uri: str) -> Path:
    """A finished sweep's experiment folder: the meta file and a tuner.pkl that, if unpickled,
    leaves a marker file (it must never be)."""
    from autoal.platform.sweep.driver import write_meta

    exp = folder / SWEEP_ID
    write_meta(
        str(exp),
        {
            "sweep_id": SWEEP_ID,
            "name": "s",
            "created": 1.0,
            "spec": {"name": "s", "space": {"strategy": {"grid": ["random"]}}, "seeds": [0]},
            "arms": [{"label": "random", "delta": {}, "config": {}}],
            "base": {"tracking": {"uri": tracking_uri, "experiment": "other"}},
        },
    )

    class Marker:
        def __reduce__(self):
            return (Path.touch, (folder / "UNPICKLED",))

    (exp / "tuner.pkl").write_bytes(pickle.dumps(Marker()))
    return exp


@pytest.fixture
def two_projects(tmp_path):
    """This project's (empty) storage and another project's, with a sweep and an MLflow store."""
    here, other = tmp_path / "here" / "ray_results", tmp_path / "other" / "ray_results"
    here.mkdir(parents=True)
    other.mkdir(parents=True)
    (other.parent / "mlflow.db").write_bytes(b"the other project's store")
    _sweep(other, f"sqlite:///{other.parent / 'mlflow.db'}")
    return here, other


@pytest.mark.parametrize("how", ["dotdot", "absolute path", "link absolute", "link dotdot"])
def test_resume_outside_storage_is_refused(two_projects, how):
    from autoal.platform.sweep import find_resumable

    here, other = two_projects
    before = snapshot(other.parent)
    if how == "dotdot":
        resume = f"../../other/ray_results/{SWEEP_ID}"
    elif how == "absolute path":
        resume = str(other / SWEEP_ID)
    else:
        link(here / SWEEP_ID, other / SWEEP_ID, how.split()[1])
        resume = SWEEP_ID
    with pytest.raises(
        ConfigError,
        match=r"sweep.resume=.*not a sweep folder directly under .*here/ray_results.*"
        r"set sweep.storage_path",
    ):
        find_resumable(str(here), "s", resume)
    if how.startswith("link"):  # resume=true (the latest) never picks a link leading elsewhere
        with pytest.raises(ConfigError, match="lead outside it through a symbolic link"):
            find_resumable(str(here), "s", True)
    assert snapshot(other.parent) == before and not (other / "UNPICKLED").exists()


def test_resume_inside_storage_by_id_path_or_latest(two_projects):
    from autoal.platform.sweep import find_resumable

    here, _ = two_projects
    mine = _sweep(here, "sqlite:///x.db")
    want = str(here / SWEEP_ID)
    assert find_resumable(str(here), "s", SWEEP_ID) == want
    assert find_resumable(str(here), "s", str(mine)) == want  # an absolute path under storage_path
    assert find_resumable(str(here), "s", f"../ray_results/{SWEEP_ID}") == want  # '..' that stays inside
    assert find_resumable(str(here), "s", True) == want
    with pytest.raises(ConfigError, match="no sweep"):
        find_resumable(str(here), "s", "s-nope")
    # a link inside the sweep folder that leads outside (its Tune state read on resume)
    (mine / "tuner.pkl").unlink()
    link(mine / "tuner.pkl", two_projects[1] / SWEEP_ID / "tuner.pkl", "absolute")
    with pytest.raises(StateError, match="sweep folder entry .*tuner.pkl leads to"):
        find_resumable(str(here), "s", SWEEP_ID)


def test_a_remote_storage_is_checked_by_its_text():
    from autoal.platform.sweep.driver import find_resumable, sweep_folder

    assert sweep_folder("s3://b/results", "s3://b/results/s-1/") == "s3://b/results/s-1"
    for bad in ("s3://b/results/../x", "s3://b/other/s-1", "s3://b/results/a/b", "s3://b/results", "gs://b/results/x"):
        with pytest.raises(ConfigError, match="not a sweep folder directly under s3://b/results"):
            sweep_folder("s3://b/results", bad)
    with pytest.raises(ConfigError, match="sweep.resume=../other"):
        find_resumable("s3://b/results", "s", "../other")


def test_run_sweep_refuses_resume_outside_storage_before_anything(two_projects):
    """The run itself (not only --check) refuses, before the MLflow store or Ray is touched."""
    from autoal.platform.sweep import SweepSpec, run_sweep

    here, other = two_projects
    before = snapshot(other.parent)
    spec = SweepSpec.from_dict(
        {
            "name": "s",
            "space": {"strategy": {"grid": ["random"]}},
            "seeds": [0],
            "storage_path": str(here),
            "report": False,
            "resume": f"../../other/ray_results/{SWEEP_ID}",
        }
    )
    with pytest.raises(ConfigError, match="sweep.resume"):
        run_sweep(spec, {}, out=lambda s: None)
    assert snapshot(other.parent) == before and not (other / "UNPICKLED").exists()


def test_sweep_check_cli_refuses_resume_outside_storage(two_projects, tmp_path, capsys):
    from autoal.cli.sweep import main

    here, other = two_projects
    before = snapshot(other.parent)
    argv = [
        "--check",
        f"sweep.storage_path={here}",
        f"sweep.resume=../../other/ray_results/{SWEEP_ID}",
        f"runtime.output_dir={tmp_path / 'here' / 'runs'}",
        f"tracking.uri=sqlite:///{tmp_path / 'here' / 'mlflow.db'}",
    ]
    with pytest.raises(SystemExit) as e:
        main_guard(main, argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "ConfigError: sweep.resume=" in err, err
    assert "not a sweep folder directly under" in err
    assert snapshot(other.parent) == before and not (other / "UNPICKLED").exists()
    assert not (tmp_path / "here" / "mlflow.db").exists() and not (tmp_path / "here" / "runs").exists()


# ------------------------------------------------------------------------------ labeling projects


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A labeling project after one export (then discarded), built once: tests copy it."""
    from autoal.cli.query import main
    from labeling_images import make_images, settings

    base = tmp_path_factory.mktemp("labeling")
    images, project = base / "images", base / "project"
    make_images(images)
    assert main(["export", *settings(base, images, project, "tracking.enabled=false")]) == 0
    assert main(["discard", f"labeling.project={project}"]) == 0
    return base


def _copy_project(exported: Path, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A copy of the exported project with its own images; the export arguments for it."""
    from labeling_images import settings

    shutil.copytree(exported / "images", tmp_path / "images", symlinks=True)
    shutil.copytree(exported / "project", tmp_path / "project", symlinks=True)
    images, project = tmp_path / "images", tmp_path / "project"
    (project / "settings.json").unlink()
    st = json.loads((project / "labels.json").read_text())
    st["images"] = str(images.resolve())
    (project / "labels.json").write_text(json.dumps(st))
    return images, project, ["export", *settings(tmp_path, images, project, "tracking.enabled=false")]


def _private(tmp_path: Path) -> Path:
    from PIL import Image

    out = tmp_path / "outside"
    out.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out / "private.png")
    return out / "private.png"


def _set_pool_entry(project: Path, i: int, entry: str) -> None:
    st = json.loads((project / "labels.json").read_text())
    labeled = {e["sample_id"] for e in st["labeled"]}
    assert i not in labeled
    st["pool"][i] = entry
    (project / "labels.json").write_text(json.dumps(st))


@pytest.mark.parametrize("how", ["dotdot", "link absolute", "link dotdot"])
def test_export_refuses_a_pool_entry_outside_the_images(exported, tmp_path, how):
    from autoal.cli.query import main

    images, project, args = _copy_project(exported, tmp_path)
    private = _private(tmp_path)
    st = json.loads((project / "labels.json").read_text())
    i = len(st["pool"]) - 1
    if how == "dotdot":
        _set_pool_entry(project, i, os.path.relpath(private, images))  # ../outside/private.png
        assert st["pool"][i] != os.path.relpath(private, images)
    else:
        target = images / st["pool"][i]
        target.unlink()
        link(target, private, how.split()[1])
    before, batches = snapshot(private.parent), snapshot(project)
    with pytest.raises(
        StateError,
        match=r"labels.json: the pool entry .* leads to .*outside/private.png, outside "
        r".*images.*restore labels.json",
    ):
        main(args)
    assert snapshot(private.parent) == before
    assert snapshot(project) == batches  # no CSV, no thumbnails, no state written
    assert not (project / "batches" / "round_002.csv").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_image_linked_from_outside_is_refused_on_rescan(exported, tmp_path, kind):
    from autoal.cli.query import main

    images, project, args = _copy_project(exported, tmp_path)
    private = _private(tmp_path)
    link(images / "unlabeled" / "zz_link.png", private, kind)
    before = snapshot(project)
    with pytest.raises(DataError, match=r"labeling.images: the image .*zz_link.png leads to .*private.png"):
        main(args)
    assert snapshot(project) == before
    assert "zz_link.png" not in (project / "labels.json").read_text()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("entry", ["checkpoints", "batches"])
def test_export_refuses_a_project_entry_linked_outside(exported, tmp_path, kind, entry):
    from autoal.cli.query import main

    images, project, args = _copy_project(exported, tmp_path)
    out = _outside(tmp_path)
    if (project / entry).exists():
        shutil.rmtree(project / entry)
    link(project / entry, out / "ckpts", kind)
    before = snapshot(out)
    with pytest.raises(StateError, match=rf"project entry .*{entry} leads to .*outside"):
        main(args)
    assert snapshot(out) == before


def test_a_labeling_project_and_images_behind_links_still_work(exported, tmp_path):
    """labeling.project and labeling.images given through links the user made: the export runs
    and writes the batch into the real project folder."""
    from autoal.cli.query import main
    from labeling_images import read_batch

    images, project, args = _copy_project(exported, tmp_path)
    (tmp_path / "p-link").symlink_to(project)
    args = [a if not a.startswith("labeling.project=") else f"labeling.project={tmp_path / 'p-link'}" for a in args]
    assert main(args) == 0
    rows = read_batch(project / "batches" / "round_001.csv")
    assert rows and all((images / r["file_path"]).resolve().is_relative_to(images.resolve()) for r in rows)
    assert (project / "batches" / "round_001.png").is_file()


def test_an_unknown_users_home_is_a_plain_folder_name(tmp_path, monkeypatch):
    """``~0/x`` (no user named 0) is a folder named ``~0`` under the working folder, as the shell
    leaves it, not a traceback from pathlib's expanduser (found by the generated-override suite)."""
    from autoal.config import RunConfig
    from autoal.paths import user_path

    assert user_path("~0/x") == Path("~0/x")
    assert user_path("~/x") == Path.home() / "x"
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig.from_dict({"runtime": {"output_dir": "~0/runs"}, "tracking": {"enabled": False}})
    assert str(cfg.runtime.output_dir) == "~0/runs"
    assert not (tmp_path / "~0").exists()  # checking writes nothing
