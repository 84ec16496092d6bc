"""Labeling by a person: export the next batch of images to label, import the filled-in CSV.

    autoal query export labeling.images=/data/photos labeling.project=/data/photos-al
    #   ... a person fills in the label column of /data/photos-al/batches/round_001.csv ...
    autoal query import labeling.project=/data/photos-al --csv round_001.csv [--allow-partial]
    autoal query export labeling.project=/data/photos-al      # the next round
    autoal query status labeling.project=/data/photos-al
    autoal query discard labeling.project=/data/photos-al     # drop the batch waiting for labels

Any ``key=value`` of conf/query.yaml applies (strategy=entropy, al.query_size=50, ...); a project
keeps the settings of its last export (``autoal/labeling/settings.py``). Rules: ``autoal/labeling/``."""

from __future__ import annotations

import json
import shlex

from autoal.config import RunConfig
from autoal.errors import ConfigError
from autoal.labeling import LabelingConfig, LabelingProject, merge_overrides, store_overrides, stored_overrides
from autoal.labeling.settings import pin_paths, project_dir
from autoal.writable import space_for
from autoal.cli.common import (
    check_override_syntax,
    compose,
    hydra_override,
    main_guard,
    mlflow_ui_command,
    override_word,
)

COMMANDS = ("export", "import", "status", "discard")
USAGE = (
    "usage: autoal query {export|import|status|discard} labeling.project=DIR "
    "[--csv FILE] [--allow-partial] [key=value ...]"
)


def parse_args(argv: list[str]) -> tuple[str, str | None, bool, list[str]]:
    if not argv or argv[0] not in COMMANDS:
        got = repr(argv[0]) if argv else "nothing"
        raise ConfigError(f"command: expected one of {', '.join(COMMANDS)}; got {got} ({USAGE})")
    cmd, csv_file, allow, overrides = argv[0], None, False, []
    rest = iter(argv[1:])
    for a in rest:
        if a == "--csv":
            csv_file = next(rest, None)
            if not csv_file or csv_file.startswith("--"):
                raise ConfigError(f"--csv: a file is required ({USAGE})")
        elif a.startswith("--csv="):
            csv_file = a[len("--csv=") :]
        elif a == "--allow-partial":
            allow = True
        elif a.startswith("-"):
            raise ConfigError(f"{a}: unknown option; valid options: --csv FILE, --allow-partial ({USAGE})")
        else:
            overrides.append(a)
    if cmd == "import" and not csv_file:
        raise ConfigError(f"--csv: import needs the filled-in CSV file ({USAGE})")
    if cmd != "import" and (csv_file or allow):
        raise ConfigError(f"--csv/--allow-partial: only for import ({USAGE})")
    return cmd, csv_file, allow, overrides


def _as_parsed(overrides: list[str]) -> list[str]:
    """``labeling.project=...`` as Hydra reads it (quotes and escapes undone: a project folder
    named ``'/data/My Photos-al'`` is /data/My Photos-al, where its stored settings are)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    check_override_syntax(overrides)
    out = []
    for text, o in zip(overrides, OverridesParser.create().parse_overrides(overrides)):
        value = o.value() if o.value_type is not None else None
        out.append(
            f"labeling.project={value}" if o.key_or_group == "labeling.project" and isinstance(value, str) else text
        )
    return out


def build(argv: list[str]):
    """(command, csv, LabelingProject, merged overrides) for ``argv``."""
    cmd, csv_file, allow, given = parse_args(argv)
    project = project_dir(_as_parsed(given), USAGE)
    overrides = merge_overrides(stored_overrides(project), given)
    d = compose(overrides, config_name="query")
    overrides = pin_paths(d, overrides, hydra_override)  # stored absolute: later commands may run from any folder
    lab = d.pop("labeling")
    if allow:
        lab["allow_partial"] = True
    cfg = RunConfig.from_dict(d)
    return cmd, csv_file, LabelingProject(cfg, LabelingConfig.from_dict(lab)), overrides


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0
    cmd, csv_file, proj, overrides = build(argv)
    with space_for(proj.dir, "labeling.project"):  # a full disk: one line naming the file
        return _run(cmd, csv_file, proj, overrides)


def _run(cmd: str, csv_file: str | None, proj: LabelingProject, overrides: list[str]) -> int:
    """The command ``cmd`` on the project ``proj``; prints its result."""
    res = None  # export and import report tracking problems
    if cmd == "export":
        res = proj.export_batch()
        if res.already_pending:
            print(
                f"round {res.round}: a batch of {len(res.sample_ids)} images is already waiting for labels: "
                f"{res.csv}\nimport it (or run `discard`) before the next export"
            )
        else:
            store_overrides(proj.dir, overrides)
            print(
                f"round {res.round}: {len(res.sample_ids)} images to label, most informative first:\n  {res.csv}\n"
                + (f"  {res.thumbnails}  (thumbnails, in the CSV's order)\n" if res.thumbnails else "")
                + f"fill in the label column, then run:\n  autoal query import "
                f"{override_word('labeling.project', str(proj.dir))} --csv {shlex.quote(str(res.csv))}"
            )
    elif cmd == "import":
        res = proj.import_batch(csv_file)
        agree = "" if res.agreement is None else f"; the model agreed with {res.agreement:.0%} of them"
        back = f"; {res.returned_to_pool} unlabeled returned to the pool" if res.returned_to_pool else ""
        print(
            f"round {res.round}: {res.added} labels imported ({res.labeled_total} labeled in all){back}{agree}\n"
            f"next: autoal query export {override_word('labeling.project', str(proj.dir))}"
        )
    elif cmd == "status":
        print(json.dumps(proj.status(), indent=1))
    else:
        r = proj.discard_pending()
        print("no batch was waiting" if r is None else f"discarded the batch of round {r}")
    if res is not None and res.tracking_error:
        print(f"warning: {res.tracking_error}")
    elif res is not None and proj.cfg.tracking.enabled:
        print(f"MLflow UI:  {mlflow_ui_command(proj.cfg.tracking.uri)}")
    return 0


if __name__ == "__main__":
    main_guard(main)
