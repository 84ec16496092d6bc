"""Labeling by a person: export the next batch of images to label, import the filled-in CSV.

    python pipelines/query.py export labeling.images=/data/photos labeling.project=/data/photos-al
    #   ... a person fills in the label column of /data/photos-al/batches/round_001.csv ...
    python pipelines/query.py import labeling.project=/data/photos-al --csv round_001.csv [--allow-partial]
    python pipelines/query.py export labeling.project=/data/photos-al      # the next round
    python pipelines/query.py status labeling.project=/data/photos-al
    python pipelines/query.py discard labeling.project=/data/photos-al     # drop the batch waiting for labels

Any ``key=value`` of conf/query.yaml applies (strategy=entropy, al.query_size=50,
model=resnet18, labeling.image_size=64, tracking.uri=...). The project remembers the settings of
its last successful export, and later commands start from them: a setting given again on the
command line replaces the stored one, so a forgotten ``strategy=...`` never silently changes the
sequence of queries. Folder layouts, CSV columns and import rules: ``autoal/labeling.py``."""
from __future__ import annotations

import json
from pathlib import Path

from autoal.errors import ConfigError
from pipelines.common import compose, main_guard, mlflow_ui_command

COMMANDS = ("export", "import", "status", "discard")
SETTINGS = "settings.json"  # in the project folder: the overrides of the last successful export
_NOT_STORED = ("labeling.project", "labeling.allow_partial")
USAGE = ("usage: python pipelines/query.py {export|import|status|discard} labeling.project=DIR "
         "[--csv FILE] [--allow-partial] [key=value ...]")


def parse_args(argv: list[str]) -> tuple[str, str | None, bool, list[str]]:
    if not argv or argv[0] not in COMMANDS:
        got = repr(argv[0]) if argv else "nothing"
        raise ConfigError(f"command: expected one of {', '.join(COMMANDS)}; got {got}\n{USAGE}")
    cmd, csv_file, allow, overrides = argv[0], None, False, []
    rest = iter(argv[1:])
    for a in rest:
        if a == "--csv":
            csv_file = next(rest, None)
            if not csv_file or csv_file.startswith("--"):
                raise ConfigError(f"--csv: a file is required\n{USAGE}")
        elif a.startswith("--csv="):
            csv_file = a[len("--csv="):]
        elif a == "--allow-partial":
            allow = True
        elif a.startswith("-"):
            raise ConfigError(f"{a}: unknown option; valid options: --csv FILE, --allow-partial\n{USAGE}")
        else:
            overrides.append(a)
    if cmd == "import" and not csv_file:
        raise ConfigError(f"--csv: import needs the filled-in CSV file\n{USAGE}")
    if cmd != "import" and (csv_file or allow):
        raise ConfigError(f"--csv/--allow-partial: only for import\n{USAGE}")
    return cmd, csv_file, allow, overrides


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(stored: list[str], given: list[str]) -> list[str]:
    """Stored settings first, then the command line's; a key given again replaces the stored one."""
    keys = {_key(o) for o in given}
    return [o for o in stored if _key(o) not in keys] + list(given)


def _project_dir(overrides: list[str]) -> Path:
    vals = [o.split("=", 1)[1] for o in overrides if _key(o) == "labeling.project" and "=" in o]
    if not vals or not vals[-1]:
        raise ConfigError(f"labeling.project: required, e.g. labeling.project=/data/photos-al\n{USAGE}")
    return Path(vals[-1]).expanduser().resolve()


def _stored(project: Path) -> list[str]:
    f = project / SETTINGS
    if not f.is_file():
        return []
    try:
        d = json.loads(f.read_text())
        out = d["overrides"]
        assert isinstance(out, list) and all(isinstance(o, str) for o in out)
        return out
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise ConfigError(f"{f}: the project's stored settings are unreadable ({e}); delete the file and pass "
                          "the settings on the command line") from None


def build(argv: list[str]):
    """(command, csv, LabelingProject, merged overrides) for ``argv``."""
    from autoal.config import RunConfig
    from autoal.labeling import LabelingConfig, LabelingProject

    cmd, csv_file, allow, given = parse_args(argv)
    project = _project_dir(given)
    overrides = merge_overrides(_stored(project), given)
    d = compose(overrides, config_name="query")
    lab = d.pop("labeling")
    if allow:
        lab["allow_partial"] = True
    cfg = RunConfig.from_dict(d)
    return cmd, csv_file, LabelingProject(cfg, LabelingConfig.from_dict(lab)), overrides


def main(argv: list[str]) -> int:
    from autoal.state import atomic_write_json

    cmd, csv_file, proj, overrides = build(argv)
    tracking = proj.cfg.tracking
    if cmd == "export":
        res = proj.export_batch()
        if res.already_pending:
            print(f"round {res.round}: a batch of {len(res.sample_ids)} images is already waiting for labels: "
                  f"{res.csv}\n"
                  f"import it (or run `discard`) before the next export")
        else:
            atomic_write_json(proj.dir / SETTINGS, {"overrides": [o for o in overrides if _key(o) not in _NOT_STORED]})
            print(f"round {res.round}: {len(res.sample_ids)} images to label, most informative first:\n  {res.csv}\n"
                  f"fill in the label column, then run:\n  python pipelines/query.py import "
                  f"labeling.project={proj.dir} --csv {res.csv}")
    elif cmd == "import":
        res = proj.import_batch(csv_file)
        agree = "" if res.agreement is None else f"; the model agreed with {res.agreement:.0%} of them"
        back = f"; {res.returned_to_pool} unlabeled returned to the pool" if res.returned_to_pool else ""
        print(f"round {res.round}: {res.added} labels imported ({res.labeled_total} labeled in all){back}{agree}\n"
              f"next: python pipelines/query.py export labeling.project={proj.dir}")
    elif cmd == "status":
        print(json.dumps(proj.status(), indent=1))
        return 0
    else:
        r = proj.discard_pending()
        print("no batch was waiting" if r is None else f"discarded the batch of round {r}")
        return 0
    err = res.tracking_error
    if err:
        print(f"warning: {err}")
    elif tracking.enabled:
        print(f"MLflow UI:  {mlflow_ui_command(tracking.uri)}")
    return 0


if __name__ == "__main__":
    main_guard(main)
