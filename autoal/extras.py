"""The optional parts of autoal (the extras of pyproject.toml) and the one-line error that names
the extra a feature needs.

``pip install autoal`` is the core: numpy, torch, scikit-learn, scipy, matplotlib, pillow and
tqdm, enough for ``autoal.run`` (tracking off, local scoring) and ``autoal.query``. The extras
add the platform: ``[ray]`` sweeps and Ray scoring, ``[mlflow]`` tracking and reports, ``[cli]``
the Hydra-composed commands, ``[data]`` the downloadable data sets; ``[all]`` is all four. This
module is the one place that maps an imported package to the extra that installs it."""

from __future__ import annotations

import importlib.util
import sys

from autoal.errors import MissingExtraError

#: top-level module autoal imports -> (the extra that installs it, its name in messages)
MODULES: dict[str, tuple[str, str]] = {
    "ray": ("ray", "Ray"),
    "pyarrow": ("ray", "pyarrow"),
    "jsonschema": ("ray", "jsonschema"),
    "mlflow": ("mlflow", "MLflow"),
    "pandas": ("mlflow", "pandas"),
    "sqlalchemy": ("mlflow", "SQLAlchemy"),
    "alembic": ("mlflow", "Alembic"),
    "hydra": ("cli", "Hydra"),
    "omegaconf": ("cli", "OmegaConf"),
    "yaml": ("cli", "PyYAML"),
    "medmnist": ("data", "medmnist"),
    "torchvision": ("data", "torchvision"),
    "zarr": ("data", "zarr"),
}


def installed(module: str) -> bool:
    """Whether top-level ``module`` can be imported (found without importing it)."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: an import that is blocked
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def missing_extra(what: str, modules: list[str], alternative: str = "") -> MissingExtraError:
    """The error for ``what`` lacking ``modules`` (keys of :data:`MODULES`): one line naming them
    and the ``pip install 'autoal[...]'`` that installs them, then ``alternative`` (e.g. a
    setting that needs none of them)."""
    extras = list(dict.fromkeys(MODULES[m][0] for m in modules))
    message = f"{what} needs {_names([MODULES[m][1] for m in modules])}: pip install 'autoal[{','.join(extras)}]'"
    return MissingExtraError(message + (f", or {alternative}" if alternative else ""))


def require(what: str, *modules: str, alternative: str = "") -> None:
    """Raise :class:`MissingExtraError` unless every one of ``modules`` is installed."""
    absent = [m for m in modules if not installed(m)]
    if absent:
        raise missing_extra(what, absent, alternative)


def from_import_error(e: BaseException, what: str) -> MissingExtraError | None:
    """``e`` (a ModuleNotFoundError for a package of an extra) as the error naming that extra;
    None for any other exception."""
    if not isinstance(e, ModuleNotFoundError) or not e.name:
        return None
    top = e.name.split(".")[0]
    return missing_extra(what, [top]) if top in MODULES else None
