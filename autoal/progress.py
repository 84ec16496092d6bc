"""Progress display, one rule for every long step (the loop's rounds and training epochs, the
strategies' own training and search, image decoding).

- **bar**: a tqdm bar, when the stream is a terminal (or the process is a Jupyter kernel);
- **lines**: otherwise (a log file, a pipe, a CI job): plain lines and never a carriage return.
  An *outer* loop (the run's rounds) writes one line per finished unit; an *inner* one (epochs,
  search steps, ensemble members) writes nothing, except one heartbeat line at most every
  :data:`HEARTBEAT_S` seconds while a step runs that long;
- **off**: nothing (``runtime.quiet``).

The environment variable ``AUTOAL_PROGRESS=bar|lines|off`` overrides the choice (``auto``, the
default, decides by the stream). Strategies see progress as a :class:`Reporter`,
``ctx.progress(stage, done, total, **info)``, and know nothing of tqdm.

Layer 0: imports nothing from autoal; tqdm is imported only when a bar is drawn."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator, TextIO

ENV_VAR = "AUTOAL_PROGRESS"
MODES = ("bar", "lines", "off")
#: an inner step in line mode says how far it is at most this often (seconds)
HEARTBEAT_S = 60.0


def progress_mode(enabled: bool = True, stream: TextIO | None = None) -> str:
    """``bar``, ``lines`` or ``off``: off when not ``enabled``; else ``$AUTOAL_PROGRESS`` when it
    names a mode; else a bar when ``stream`` (default: ``sys.stderr``) is a terminal or the
    process is a Jupyter kernel writing to its own stderr, and lines when not."""
    if not enabled:
        return "off"
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env in MODES:
        return env
    if stream is None or stream is sys.stderr or stream is sys.stdout:
        if "ipykernel.zmqshell" in sys.modules:  # a notebook draws tqdm's widget (tqdm.auto)
            return "bar"
    s = stream if stream is not None else sys.stderr
    try:
        return "bar" if s is not None and s.isatty() else "lines"
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return "lines"


def format_info(info: dict[str, Any]) -> str:
    """``key value, ...`` with floats to 4 significant digits (a bar's postfix, a line's tail)."""
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Bar:
    """A progress display over ``total`` units. This base class shows nothing (mode ``off``).

    ``update(n, note=..., label=...)``: ``n`` more units done; ``note`` says how it went (a bar's
    postfix, the tail of a line); ``label`` names the unit in a line (default ``desc n/total``).
    ``update_to(done)``: the same with an absolute count. A context manager (closes on exit)."""

    def __init__(self, total: int, desc: str = "", initial: int = 0) -> None:
        self.total = int(total)
        self.desc = desc
        self.n = int(initial)
        self.closed = False

    def update(self, n: int = 1, note: str | None = None, label: str | None = None) -> None:
        self.n += int(n)

    def update_to(self, done: int, note: str | None = None, label: str | None = None) -> None:
        if done > self.n or note:
            self.update(int(done) - self.n, note=note, label=label)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _TqdmBar(Bar):
    def __init__(
        self, tqdm: Any, total: int, desc: str, initial: int, stream: TextIO | None, leave: bool, unit: str
    ) -> None:
        super().__init__(total, desc, initial)
        self._bar = tqdm(
            total=self.total,
            desc=desc,
            initial=self.n,
            leave=leave,
            unit=unit,
            file=stream,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def update(self, n: int = 1, note: str | None = None, label: str | None = None) -> None:
        self.n += int(n)
        if note:
            self._bar.set_postfix_str(note, refresh=False)
        self._bar.update(int(n))

    def close(self) -> None:
        if not self.closed:
            self._bar.close()
        super().close()


class _LineBar(Bar):
    def __init__(
        self, total: int, desc: str, initial: int, stream: TextIO | None, outer: bool, heartbeat_s: float | None
    ) -> None:
        super().__init__(total, desc, initial)
        self.stream = stream
        self.outer = outer
        self.heartbeat_s = heartbeat_s
        self.t0 = self._last = time.monotonic()

    def _write(self, text: str) -> None:
        s = self.stream if self.stream is not None else sys.stderr
        try:
            s.write(text.replace("\r", " ") + "\n")
            s.flush()
        except (ValueError, OSError, AttributeError):  # a closed or missing stream: say nothing
            pass

    def update(self, n: int = 1, note: str | None = None, label: str | None = None) -> None:
        self.n += int(n)
        if self.outer:
            if n > 0:
                self._write(f"{label or f'{self.desc} {self.n}/{self.total}'}" + (f": {note}" if note else ""))
            return
        now = time.monotonic()
        if self.heartbeat_s is not None and now - self._last >= self.heartbeat_s:
            self._last = now
            self._write(
                f"{label or f'{self.desc}: {self.n}/{self.total}'} ({clock(now - self.t0)})"
                + (f" {note}" if note else "")
            )


def progress_bar(
    total: int,
    desc: str,
    *,
    enabled: bool = True,
    stream: TextIO | None = None,
    outer: bool = False,
    initial: int = 0,
    leave: bool | None = None,
    unit: str = "it",
    heartbeat_s: float | None = HEARTBEAT_S,
    mode: str | None = None,
) -> Bar:
    """A display of ``total`` units named ``desc`` on ``stream`` (default ``sys.stderr``), as
    :func:`progress_mode` decides (or ``mode``): a tqdm bar, a line-mode display (``outer``: a
    line per unit; inner: a heartbeat line at most every ``heartbeat_s`` seconds, None = never)
    or nothing. ``leave``: keep the bar on screen when closed (default: ``outer``). Without
    tqdm installed, a bar is drawn as lines."""
    mode = mode or progress_mode(enabled, stream)
    if mode == "off":
        return Bar(total, desc, initial)
    if mode == "bar":
        try:
            from tqdm.auto import tqdm
        except ImportError:  # the core runs without tqdm (lines instead)
            pass
        else:
            return _TqdmBar(tqdm, total, desc, initial, stream, outer if leave is None else leave, unit)
    return _LineBar(total, desc, initial, stream, outer, heartbeat_s)


def track(
    iterable: Iterable[Any],
    total: int,
    desc: str,
    *,
    enabled: bool = True,
    stream: TextIO | None = None,
    unit: str = "it",
    heartbeat_s: float | None = HEARTBEAT_S,
) -> Iterator[Any]:
    """Iterate ``iterable`` (``total`` items) with an inner :func:`progress_bar`."""
    with progress_bar(total, desc, enabled=enabled, stream=stream, unit=unit, heartbeat_s=heartbeat_s) as bar:
        for item in iterable:
            yield item
            bar.update(1)


class Reporter:
    """How a long step says how far it is: ``reporter(stage, done, total, **info)`` — ``done``
    of ``total`` units of ``stage`` (e.g. ``"vaal/train"``) are finished; ``info`` says how it
    goes (losses, ...). A stage's ``done`` counts up to ``total`` (0 may open it before its first
    unit); a lower ``done`` than before starts the stage over (the next ensemble member's
    epochs). This base class ignores everything (progress off); :meth:`close` ends every
    display still open."""

    enabled = False

    def __call__(self, stage: str, done: int, total: int, **info: Any) -> None:
        return None

    def close(self) -> None:
        return None


NULL_REPORTER = Reporter()


class BarReporter(Reporter):
    """A :class:`Reporter` that shows each stage as an inner :func:`progress_bar` (opened on a
    stage's first report, closed when ``done`` reaches ``total``)."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        heartbeat_s: float | None = HEARTBEAT_S,
        mode: str | None = None,
    ) -> None:
        self.mode = mode or progress_mode(enabled, stream)
        self.enabled = self.mode != "off"
        self.stream = stream
        self.heartbeat_s = heartbeat_s
        self._bars: dict[str, Bar] = {}

    def __call__(self, stage: str, done: int, total: int, **info: Any) -> None:
        if not self.enabled:
            return
        done, total = int(done), int(total)
        bar = self._bars.get(stage)
        if bar is not None and (done < bar.n or total != bar.total):
            bar.close()
            bar = None
        if bar is None:
            bar = self._bars[stage] = progress_bar(
                total, stage, stream=self.stream, mode=self.mode, leave=False, heartbeat_s=self.heartbeat_s
            )
        bar.update_to(done, note=format_info(info) or None)
        if done >= total:
            bar.close()
            del self._bars[stage]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def as_reporter(progress: Any) -> Any:
    """A reporter from what callers pass as ``progress``: None/False → :data:`NULL_REPORTER`,
    True → a :class:`BarReporter` for ``sys.stderr``, a callable → itself."""
    if progress is None or progress is False:
        return NULL_REPORTER
    if progress is True:
        return BarReporter()
    if not callable(progress):
        raise TypeError(f"progress: expected a bool or a callable (stage, done, total, **info); got {progress!r}")
    return progress


def epoch_progress(report: Callable[..., None], stage: str, total: int) -> Callable[[int, float], None]:
    """A ``progress(epoch, loss)`` callback (as :func:`autoal.training.train_model` takes it) that
    reports epoch ``epoch + 1`` of ``total`` of ``stage`` with its loss."""
    return lambda epoch, loss: report(stage, int(epoch) + 1, int(total), loss=float(loss))
