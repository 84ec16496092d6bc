"""Named exceptions: every user-facing failure is one of these, with a message that names the
file or field at fault and what was expected."""


class AutoALError(Exception):
    """Base class of every error autoal raises on purpose."""


class ConfigError(AutoALError, ValueError):
    """A config key or value is invalid (unknown key, unknown choice, out-of-range number)."""


class DataError(AutoALError):
    """A data file is missing, corrupt, or holds arrays of the wrong shape, dtype or range."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A data set's files are not where the config says; the message says how to obtain them."""


class TrackingError(AutoALError):
    """The MLflow tracking store cannot be reached or written."""


class StateError(AutoALError):
    """A run's saved state is unreadable or belongs to a different config."""


class LabelFileError(AutoALError):
    """A label file filled in by a person is malformed (unknown/duplicate ids, bad labels)."""


class TrainingDiverged(AutoALError, ArithmeticError):
    """Training gave a non-finite loss or weights (the learning rate is too high for the model and
    data); the round is not recorded."""


class NoSpaceError(AutoALError, OSError):
    """A write failed for want of space: the disk or the user's quota is full, a file would
    exceed the size limit, or the SQLite store answered "database or disk is full". What was
    written before stays as it was (every state file is replaced atomically)."""


class MissingExtraError(AutoALError, ImportError):
    """A feature needs an optional part of autoal that is not installed; the message names the
    extra that installs it (``pip install 'autoal[ray]'``; see :mod:`autoal.extras`)."""


class AutoALWarning(UserWarning):
    """Base class of every warning autoal gives on purpose (the run goes on)."""


class DataWarning(AutoALWarning):
    """The data can be used but a result may mislead: e.g. a class of the test split that the
    pool lacks (never learnable), or a pool class that the test split lacks (never measured)."""
