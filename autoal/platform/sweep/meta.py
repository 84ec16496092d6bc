"""Where a sweep is stored and how it is found again: the sweep id, its folder under
``sweep.storage_path`` and the ``sweep_meta.json`` in it that resume reads back (checked before
anything is unpickled)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from typing import Any

from autoal.containment import check_tree, resolved
from autoal.errors import ConfigError, StateError
from autoal.platform.sweep.spec import META_FILE


def new_sweep_id(name: str) -> str:
    return f"{name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def _fs(path: str):
    import pyarrow.fs as pafs

    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def join_path(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def write_meta(exp_path: str, meta: dict[str, Any]) -> None:
    fs, p = _fs(join_path(exp_path, META_FILE))
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(json.dumps(meta, indent=1, sort_keys=True, default=str).encode())


#: what a sweep's meta file must hold to resume it, with the type of each field
META_FIELDS = {"sweep_id": str, "name": str, "spec": dict, "arms": list, "base": dict}


def read_meta(exp_path: str) -> dict[str, Any] | None:
    """The sweep's ``sweep_meta.json`` (None when the folder has none); a file that is not JSON,
    or lacks a field resume needs, raises StateError naming the file and the field."""
    import pyarrow.fs as pafs

    fs, p = _fs(join_path(exp_path, META_FILE))
    if fs.get_file_info(p).type != pafs.FileType.File:
        return None
    where = join_path(exp_path, META_FILE)
    try:
        with fs.open_input_stream(p) as f:
            meta = json.loads(f.read().decode())
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise StateError(
            f"{where}: the sweep's meta file is unreadable ({type(e).__name__}: {e}); the sweep "
            "cannot be resumed from it (start it afresh without sweep.resume)"
        ) from None
    if not isinstance(meta, dict):
        raise StateError(f"{where}: expected a JSON object; got {type(meta).__name__}")
    for key, kind in META_FIELDS.items():
        if not isinstance(meta.get(key), kind):
            raise StateError(f"{where}: field {key!r} must be a {kind.__name__}; got {meta.get(key)!r:.80}")
    for i, a in enumerate(meta["arms"]):
        if (
            not isinstance(a, dict)
            or not isinstance(a.get("label"), str)
            or not isinstance(a.get("config"), dict)
            or not isinstance(a.get("delta"), dict)
        ):
            raise StateError(f"{where}: arms[{i}] must hold a label, a delta and a config")
    return meta


def sweep_folder(storage_path: str, path: str, resume: Any = None) -> str:
    """``path`` as the experiment folder of a sweep of ``storage_path``: a folder directly under
    it once links and ``..`` are resolved (a remote ``storage_path``, ``s3://...``: by its text),
    returned as ``<storage_path>/<name>``. Anything else is a ConfigError naming ``sweep.resume``
    (the value ``resume`` given), where the path leads and what to do: resuming unpickles the
    folder's Tune state and writes to the MLflow store its meta file names, so a sweep resumes
    only from the storage the command names."""
    what = f"sweep.resume={resume}" if resume is not None else "the sweep folder"
    fix = (
        f"a sweep resumes only from a folder directly under sweep.storage_path ({storage_path}), since its Tune "
        "state is unpickled and its MLflow store written: give the id of a sweep there (or its absolute path), "
        "or set sweep.storage_path to the folder that holds the sweep"
    )
    if "://" in storage_path:
        prefix = storage_path.rstrip("/") + "/"
        rest = path[len(prefix) :].rstrip("/") if path.startswith(prefix) else ""
        if not rest or "/" in rest or rest in (".", ".."):
            raise ConfigError(f"{what}: {path} is not a sweep folder directly under {storage_path}; {fix}")
        return join_path(storage_path, rest)
    base = resolved(storage_path, ConfigError)
    target = resolved(path, ConfigError)
    if target.parent != base:
        raise ConfigError(
            f"{what}: {path} leads to {target}, not a sweep folder directly under {base} (through "
            f"'..', a symbolic link or another folder); {fix}"
        )
    return join_path(storage_path, target.name)


def checked_sweep_tree(exp_path: str) -> str:
    """``exp_path`` (local) holding no symbolic link that leads outside it (its Tune state, trial
    checkpoints and meta file are read from there on resume): a StateError otherwise."""
    if "://" not in exp_path:
        check_tree(
            exp_path,
            what="sweep folder entry",
            fix="replace the link with the real folder or file, or start the sweep afresh without sweep.resume",
        )
    return exp_path


def find_resumable(storage_path: str, name: str, resume: Any) -> str:
    """The experiment folder to resume: ``resume`` = a sweep id (a folder name under
    ``storage_path``; a relative path is taken relative to ``storage_path``, an absolute one as
    given), or true = the most recent sweep called ``name`` under ``storage_path``. Either way
    the folder must lie directly under ``storage_path`` with links and ``..`` resolved
    (:func:`sweep_folder`) and hold no link leading outside it; else ConfigError or StateError,
    before anything is read from it."""
    import pyarrow.fs as pafs

    if isinstance(resume, str) and resume not in ("true", "latest"):
        remote = "://" in storage_path
        given = (
            resume
            if (remote and "://" in resume) or (not remote and os.path.isabs(os.path.expanduser(resume)))
            else join_path(storage_path, resume)
        )
        cand = sweep_folder(storage_path, given, resume)
        if read_meta(checked_sweep_tree(cand)) is not None:
            return cand
        raise ConfigError(f"sweep.resume: no sweep {resume!r} under {storage_path} (expected {cand}/{META_FILE})")
    fs, root = _fs(storage_path)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)) if root else []
    found, outside = [], []
    for info in infos:
        if info.type == pafs.FileType.Directory and info.base_name.startswith(f"{name}-"):
            try:
                cand = sweep_folder(storage_path, join_path(storage_path, info.base_name))
            except ConfigError:  # a link to a folder elsewhere: not a sweep of this storage
                outside.append(info.base_name)
                continue
            try:
                meta = read_meta(checked_sweep_tree(cand))
            except StateError:  # a damaged folder cannot be the latest resumable run (resume it by id to see why)
                continue
            if meta is not None and meta.get("name") == name:
                found.append((meta.get("created", 0), cand))
    if not found:
        skipped = (
            f" ({', '.join(outside[:3])} lead outside it through a symbolic link and are never resumed)"
            if outside
            else ""
        )
        raise ConfigError(
            f"sweep.resume: no earlier run of sweep {name!r} under {storage_path} to resume{skipped}; "
            f"run it without sweep.resume first"
        )
    return max(found)[1]
