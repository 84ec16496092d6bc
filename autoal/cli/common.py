"""Hydra glue shared by the commands: compose a config from the package's conf/ and command-line
overrides, turn it into the library's RunConfig, and report errors in one clear line."""

from __future__ import annotations

import os
import re
import shlex
import sys
import warnings
from typing import Any, Callable, Sequence

from autoal.errors import AutoALError, AutoALWarning, ConfigError, MissingExtraError
from autoal.paths import CONF_PACKAGE, conf_dir, packaged_conf_dir


def compose(overrides: list[str], config_name: str = "config") -> dict[str, Any]:
    """Compose ``conf/<config_name>.yaml`` with ``key=value`` overrides into a plain dict: from
    the package (Hydra's ``pkg://autoal.conf`` search path), or from ``$AUTOAL_CONF_DIR``.
    Hydra rejects misspelt keys and unknown group options, listing the valid choices."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    import yaml

    from autoal.platform.yaml_file import yaml_problem

    directory = conf_dir()
    if not (directory / f"{config_name}.yaml").exists():
        raise AutoALError(
            f"config folder {directory} has no {config_name}.yaml; AUTOAL_CONF_DIR must name a copy of "
            f"autoal's conf/ folder ({packaged_conf_dir()})"
        )
    check_override_syntax(overrides)
    GlobalHydra.instance().clear()
    init = (
        initialize_config_module(CONF_PACKAGE, version_base=None)
        if directory == packaged_conf_dir()
        else initialize_config_dir(config_dir=str(directory), version_base=None)
    )
    with init:
        try:
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
        except yaml.YAMLError as e:  # a broken file of an AUTOAL_CONF_DIR (Hydra reads it by name)
            raise ConfigError(yaml_problem(e)) from None
        except (MissingConfigException, ValueError) as e:
            raise ConfigError(_explain_group_error(e, config_name)) from None
        except ConfigCompositionException as e:
            raise ConfigError(_explain_override_error(e, hydra_compose, config_name, overrides)) from None
        except OmegaConfBaseException as e:  # an interpolation ${...} that does not resolve
            raise ConfigError(_explain_omegaconf_error(e)) from None
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(f"{missing[0]}: a value is required (e.g. {missing[0]}=/path/to/data)")
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as e:  # an interpolation ${...} that does not resolve
        raise ConfigError(_explain_omegaconf_error(e)) from None


def _explain_omegaconf_error(e: Exception) -> str:
    key = getattr(e, "full_key", None) or "config"
    lines = [
        ln for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith(("full_key:", "object_type="))
    ]
    return f"{key}: {one_line(chr(10).join(lines)) or type(e).__name__}"


def one_line(text: str) -> str:
    """A (possibly multi-line) message as one line: its non-empty lines joined by '; ' (by a
    space after a line that ends with a colon: ``2 problem(s): row 2, ...; row 5, ...``)."""
    out = ""
    for line in (ln.strip() for ln in str(text).splitlines()):
        if line:
            out += ("" if not out else " " if out.endswith(":") else "; ") + line
    return out


def check_override_syntax(overrides: Sequence[str], allow_sweep: bool = False) -> None:
    """Each ``key=value`` parsed alone with Hydra's override grammar, so that a syntax error
    names the override it is in (Hydra's own message spans three lines and names none)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for text in overrides:
        try:
            o = parser.parse_overrides([text])[0]
        except OverrideParseException as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(
                f"{text!r}: not a valid override ({first}); expected key=value, e.g. al.rounds=5 "
                "(quote a value with spaces or brackets: key='a b')"
            ) from None
        if not o.key_or_group:
            raise ConfigError(
                f"{text!r}: not a valid override (no key before '='); expected key=value, e.g. al.rounds=5"
            )
        if o.is_sweep_override() and not allow_sweep:
            raise ConfigError(
                f"{text}: comma-separated values sweep; run them with -m (autoal run -m {shlex.quote(text)}) "
                "or autoal sweep"
            )
        group_choice = not o.is_sweep_override() and "." not in o.key_or_group and o.value_type is not None
        if group_choice and not isinstance(o.value(), str) and o.key_or_group in _group_names():
            raise ConfigError(f"{o.key_or_group}: choose one option of the config group; got {o.value()!r}")
        if o.key_or_group.split(".")[0] == "hydra":
            raise ConfigError(
                f"{o.key_or_group}: Hydra's own settings are not used by autoal (it composes the config "
                "and writes no Hydra output folder); set runtime.output_dir for the run folders"
            )


def _group_names() -> set[str]:
    """The config groups of every primary config (a folder of conf/ holding YAML files)."""
    return {p.name for p in conf_dir().iterdir() if p.is_dir() and any(p.glob("*.yaml"))}


def _explain_group_error(e: Exception, config_name: str) -> str:
    """A config-group choice that does not exist (``dataset=nope``, ``dataset=``), as one line with
    the group's options."""
    import re

    m = re.search(r"Could not find '([^']*)'", str(e))
    if m:
        group, _, option = m.group(1).rpartition("/")
        group = group or m.group(1)
        options = config_groups(config_name).get(group)
        if options is not None:
            return f"{group}: no option {option!r}; options: {', '.join(options)}"
    return one_line(str(e))


def _explain_override_error(e: Exception, hydra_compose, config_name: str, overrides: Sequence[str] = ()) -> str:
    """Add the valid keys to Hydra's 'Could not override' message for a misspelt key: those of
    the config as composed with the command line's group choices (``strategy=kmeans``), so a
    misspelt ``strategy.params.*`` lists the chosen strategy's keys."""
    import re

    from omegaconf import OmegaConf

    msg = str(e).splitlines()[0]
    m = re.search(r"Could not override '([^']+)'", msg)
    if not m:
        return _explain_group_error(e, config_name)
    key = m.group(1)
    cause = e.__cause__ or e.__context__
    inner = getattr(cause, "full_key", None)
    if inner and inner != key and inner.startswith(key + "."):  # the key exists; a key inside the value does not
        return (
            f"{key}: {inner} is not one of its keys; to add a new key there, write +{inner}=VALUE "
            f"(e.g. +tracking.tags.team=vision)"
        )
    parent, _, leaf = key.rpartition(".")
    choices = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0].lstrip("+~")]
    try:
        base = hydra_compose(config_name=config_name, overrides=choices)
    except Exception:  # noqa: BLE001 - a bad group choice: fall back to the defaults' keys
        base = hydra_compose(config_name=config_name)
    node = OmegaConf.select(base, parent) if parent else base
    if node is None or not hasattr(node, "keys"):
        return f"{key}: unknown config key; valid top-level keys: {', '.join(map(str, base.keys()))}"
    if parent == "strategy.params":  # a renamed key: say what it is called now
        from autoal.strategies.registry import STRATEGIES, renamed_param

        try:
            renamed = getattr(STRATEGIES.get(str(OmegaConf.select(base, "strategy.name"))), "renamed_params", None)
        except ConfigError:
            renamed = None
        if renamed_param(renamed or {}, leaf):
            return str(renamed_param(renamed, leaf))
    if not len(node) and parent == "strategy.params":
        return f"{key}: unknown config key; strategy {OmegaConf.select(base, 'strategy.name')} has no parameters"
    return (
        f"{key}: unknown config key; valid keys under {parent or 'the top level'}: {', '.join(map(str, node.keys()))}"
    )


HYDRA_FLAGS = ("--help", "-h", "--cfg", "-c", "--info", "-i", "--multirun", "-m", "--check")


def config_groups(config_name: str = "config") -> dict[str, list[str]]:
    """The config groups that ``conf/<config_name>.yaml`` composes, each with its options."""
    from autoal.platform.yaml_file import read_yaml

    root = conf_dir()
    primary = read_yaml(root / f"{config_name}.yaml", "primary config")
    if not isinstance(primary, dict):
        raise ConfigError(
            f"{root / f'{config_name}.yaml'}: expected a mapping (defaults: and config keys) at the "
            f"top level; got {type(primary).__name__}"
        )
    defaults = primary.get("defaults") or []
    names = [next(iter(d)) for d in defaults if isinstance(d, dict)]
    return {g: sorted(p.stem for p in (root / g).glob("*.yaml")) for g in names if (root / g).is_dir()}


def split_flags(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    """Hydra's standard flags (``--help``, ``--cfg job``, ``--info``, ``-m``) apart from the
    ``key=value`` overrides; any other option is a ConfigError listing the valid ones."""
    flags: dict[str, str | bool] = {}
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a in ("--help", "-h"):
            flags["help"] = True
        elif a in ("--info", "-i"):
            flags["info"] = True
        elif a in ("--multirun", "-m"):
            flags["multirun"] = True
        elif a == "--check":
            flags["check"] = True
        elif a in ("--cfg", "-c") or a.startswith("--cfg="):
            what = a.split("=", 1)[1] if "=" in a else next(it, "")
            if what not in ("job", "all"):
                raise ConfigError(f"--cfg: expected job or all; got {what!r}")
            flags["cfg"] = what
        elif a.startswith("-"):
            raise ConfigError(
                f"{a}: unknown option; valid options: --help, --cfg job, --info, --check, "
                "-m/--multirun, and key=value overrides"
            )
        else:
            rest.append(a)
    return flags, rest


def answer_info_flags(
    flags: dict[str, str | bool], script: str, doc: str | None, config_name: str, overrides: list[str]
) -> bool:
    """``--help``, ``--info``, ``--cfg``: print the answer and return True (the command is done);
    False when none of them was given."""
    if flags.get("help"):
        print(help_text(script, doc, config_name))
    elif flags.get("info"):
        print(info_text(config_name, overrides))
    elif flags.get("cfg"):
        print(config_yaml(config_name, overrides))
    else:
        return False
    return True


def help_text(script: str, doc: str | None, config_name: str = "config") -> str:
    """``--help``: the script's docstring, the config groups and their options, the flags."""
    groups = config_groups(config_name)
    lines = [
        (doc or "").strip(),
        "",
        f"usage: {script} [--help] [--cfg job] [--info] [--check] [-m] [key=value ...]",
        "",
        f"Config groups ({conf_dir()}; choose with group=option, e.g. strategy=entropy):",
    ]
    for g, opts in groups.items():
        lines.append(f"  {g:<10} {', '.join(opts)}")
    lines += [
        "",
        "Any key of the composed config is an override ("
        f"{script} --cfg job lists them), e.g. al.rounds=5 train.lr=0.001.",
        "Flags: --cfg job prints the composed config; --info prints where it comes from;",
        "--check validates the config, the folders it would write and the tracking store, says",
        "what would run, and exits (0, or 2 with one line naming the problem; nothing is written);",
        "-m/--multirun runs every combination of comma-separated values (strategy=margin,entropy",
        "al.seed=0,1) as one Ray Tune sweep (autoal sweep), paired seeds, one MLflow parent run.",
    ]
    return "\n".join(lines)


def info_text(config_name: str, overrides: list[str]) -> str:
    """``--info``: versions, the config folder, the primary config and the group choices."""
    import hydra

    from autoal import __version__

    d = compose(overrides, config_name)
    chosen = {
        g: (d.get(g) or {}).get("name", "") if isinstance(d.get(g), dict) else "" for g in config_groups(config_name)
    }
    source = f"pkg://{CONF_PACKAGE}" if conf_dir() == packaged_conf_dir() else "AUTOAL_CONF_DIR"
    lines = [
        f"autoal {__version__}, Hydra {hydra.__version__}",
        f"config folder: {conf_dir()} ({source})",
        f"primary config: {config_name}.yaml",
        "overrides: " + (" ".join(overrides) or "(none)"),
        "group choices (name inside each): " + ", ".join(f"{g}={v}" for g, v in chosen.items() if v),
    ]
    return "\n".join(lines)


def config_yaml(config_name: str, overrides: list[str]) -> str:
    """``--cfg job``: the composed config as YAML."""
    import yaml

    return yaml.safe_dump(compose(overrides, config_name), sort_keys=False)


def multirun_sweep(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``-m``: the fixed overrides, and the sweep section (space and seeds) that the
    comma-separated ones make; parsed with Hydra's own override grammar."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    check_override_syntax(overrides, allow_sweep=True)
    fixed: list[str] = []
    space: dict[str, Any] = {}
    seeds: list[int] | None = None
    for text, o in zip(overrides, OverridesParser.create().parse_overrides(overrides)):
        if not o.is_sweep_override():
            fixed.append(text)
            continue
        values = list(o.sweep_iterator())
        key = o.get_key_element()
        if key == "al.seed":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ConfigError(f"al.seed: -m sweeps integer seeds (al.seed=0,1,2); got {text!r}")
            seeds = list(values)
        else:
            space[key] = {"grid": values}
    if not space and seeds is None:
        raise ConfigError(
            "-m/--multirun: no comma-separated values to sweep (e.g. strategy=margin,entropy al.seed=0,1)"
        )
    sweep = {"name": "multirun", "space": space}
    if seeds is not None:
        sweep["seeds"] = seeds
    return fixed, sweep


def run_config(d: dict[str, Any]):
    from autoal.config import RunConfig

    return RunConfig.from_dict(d)


def main_guard(fn: Callable[[list[str]], int | None], argv: list[str] | None = None) -> None:
    """Run ``fn(argv)`` (default: the command line's arguments); print config/data/tracking
    errors as one line (no stack trace) and exit 2."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # MLflow logs every SQLAlchemy error it re-raises with a traceback (a full or locked SQLite
    # store); the command names the error itself, in one line
    import logging

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    try:
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        user_errors: tuple[type[BaseException], ...] = (AutoALError, HydraException, OmegaConfBaseException)
    except ImportError:  # pragma: no cover
        user_errors = (AutoALError,)
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # autoal's own: one line, like errors
        if issubclass(category, AutoALWarning):
            print(f"warning: {category.__name__}: {one_line(str(message))}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        code = fn(sys.argv[1:] if argv is None else list(argv))
    except MissingExtraError as e:  # names the extra to install: its message is the whole line
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        sys.exit(2)
    except user_errors as e:
        print(f"error: {type(e).__name__}: {one_line(str(e))}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # what no layer below named: a full disk, a YAML file Hydra or a library read
        line = _named_failure(e)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            "interrupted: the run's state is saved after every round; run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(130)
    finally:
        warnings.showwarning = shown
    sys.exit(code or 0)


def _named_failure(e: Exception) -> str | None:
    """One line for an exception that is the user's to fix although no autoal code named it: a
    write that found no space (:func:`autoal.writable.space_error`: ENOSPC, EDQUOT, EFBIG, a
    full SQLite store), a malformed YAML file, a package of an extra that is not installed (its
    ``pip install 'autoal[...]'``); None for anything else (a bug: its traceback)."""
    from autoal.extras import from_import_error
    from autoal.writable import no_space_message, space_error

    missing = from_import_error(e, "this command")  # a package of an extra that is not installed
    if missing is not None:
        return str(missing)
    cause = space_error(e)
    if cause is not None:
        return f"NoSpaceError: {one_line(no_space_message(cause, None))}"
    try:
        import yaml
    except ImportError:  # pragma: no cover
        return None
    if isinstance(e, yaml.YAMLError):
        from autoal.platform.yaml_file import yaml_problem

        return f"ConfigError: {one_line(yaml_problem(e))}"
    return None


def results_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table (fixed-width) for the terminal."""

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join([line, sep, *body])


def mlflow_ui_command(uri: str) -> str:
    """The command that shows the store at ``uri`` (quoted: it runs as printed, spaces included)."""
    if uri.startswith("http"):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)}"


def override_word(key: str, value: str) -> str:
    """``key=value`` as one shell word that the shell and then Hydra's override grammar read back
    as the string ``value``, for a command printed for the user to copy: Hydra-quoted where its
    grammar needs it (commas, brackets, parentheses, quotes, ``=``, non-ASCII letters), then
    quoted for the shell (:func:`shlex.quote`). (A value holding ``${`` is an interpolation to
    Hydra either way.)"""
    return shell_word(hydra_override(key, value))


def hydra_override(key: str, value: str) -> str:
    """``key=value`` as an override that Hydra's grammar reads back as the string ``value``
    (Hydra-quoted where needed; no shell quoting): what a stored setting holds."""
    word = f"{key}={value}"
    if not _reads_back(word, key, value):
        # Hydra's quoted strings: \' is a quote; backslashes escape only before a quote or the end
        body = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value).replace("'", "\\'")
        word = f"{key}='{body}'"
    return word


def shell_word(text: str) -> str:
    """``text`` as one POSIX shell word: :func:`shlex.quote`, or double quotes where that reads
    better (``text`` holds single quotes and nothing double quotes expand)."""
    if "'" in text and not re.search(r'["$`\\!]', text):
        return f'"{text}"'
    return shlex.quote(text)


def _reads_back(word: str, key: str, value: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        o = OverridesParser.create().parse_overrides([word])[0]
        return o.key_or_group == key and not o.is_sweep_override() and o.value() == value
    except Exception:  # noqa: BLE001 - any parse failure: quote it
        return False
