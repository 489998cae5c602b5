"""Progress of a long command (``datagen build``, ``model train``), on a terminal or not.

On a terminal: a tqdm bar, as before. Elsewhere (``nohup``, ``| tee``, a batch job's log) a bar
would be kilobytes of carriage returns, and nothing at all leaves the log silent for hours: so
one line when the work starts (what, how much) and then one line every
:data:`ENV` seconds (default :data:`DEFAULT_S`), each with done/total, the rate and the time
left, e.g. ``train decouple: 500/3000 iterations (17 %), 1.6 s/iteration, 1 h 07 min left``.
``DECOUPLE_PROGRESS_S=0`` turns the lines off; tests set a short interval.
"""
from __future__ import annotations

import os
import sys
import time

#: the environment variable with the seconds between two progress lines outside a terminal
ENV = "DECOUPLE_PROGRESS_S"
#: seconds between two progress lines when :data:`ENV` is not set
DEFAULT_S = 30.0


def interval_s(env=None) -> float | None:
    """Seconds between two progress lines from :data:`ENV` (default :data:`DEFAULT_S`); None
    when it is ``0`` or ``off`` (no lines); a ValueError names the variable otherwise."""
    env = os.environ if env is None else env
    text = str(env.get(ENV, "")).strip()
    if not text:
        return DEFAULT_S
    if text.lower() in ("0", "off", "no"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise ValueError(f"{ENV} must be the seconds between two progress lines (0 or off: no "
                         f"lines), got {text!r}")
    return value or None


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``, ``3 d 04 h``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h:02d} h"


class Progress:
    """``update(n)``, ``set_postfix(**values)`` and ``close()`` as a tqdm bar: a bar when
    ``file`` (stderr) is a terminal, else the lines described in the module docstring.

    ``noun`` names the unit in the lines (``"pair"``, ``"iteration"``), ``unit`` in the bar;
    ``initial`` is work already done (a resumed run: the rate counts only this session's);
    ``every`` (seconds, None: no lines; default: :func:`interval_s`) and ``clock`` are for
    tests."""

    def __init__(self, total: int, *, desc: str, noun: str, unit: str | None = None,
                 initial: int = 0, file=None, every=ENV, clock=time.monotonic,
                 terminal: bool | None = None):
        self.file = sys.stderr if file is None else file
        self.total, self.done, self.initial = int(total), int(initial), int(initial)
        self.desc, self.noun = desc, noun
        self.clock = clock
        self.postfix: dict = {}
        self.bar = None
        self.lines = 0
        self.start = self.last = clock()
        if terminal is None:
            isatty = getattr(self.file, "isatty", None)
            terminal = bool(isatty and isatty())
        if terminal:
            from tqdm import tqdm

            self.every = None
            self.bar = tqdm(total=total, initial=initial, unit=unit or noun, desc=desc,
                            dynamic_ncols=True, file=self.file)
            return
        self.every = interval_s() if every is ENV else every
        if self.every is not None:
            left = self.total - self.done
            first = (f"{desc}: {left} {self._plural(left)} to go"
                     + (f" ({self.done} of {self.total} done before)" if self.done else "")
                     + f"; a line every {duration(self.every)} ({ENV} to change)")
            self._print(first)

    def _plural(self, n: int) -> str:
        return self.noun if n == 1 else self.noun + "s"

    def _print(self, text: str) -> None:
        try:
            print(text, file=self.file, flush=True)
        except (OSError, ValueError):  # a closed or broken stream: progress is never fatal
            self.every = None

    def line(self, now: float | None = None) -> str:
        """The current progress line: done/total, percentage, rate, time left, postfix."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        new = self.done - self.initial
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.desc}: {self.done}/{self.total} {self._plural(self.total)} ({pct:.0f} %)"
        if new > 0:
            rate = new / elapsed
            text += (f", {rate:.3g} {self._plural(2)}/s" if rate >= 1
                     else f", {elapsed / new:.3g} s/{self.noun}")
            text += f", {duration((self.total - self.done) / rate)} left"
        else:
            text += f", none yet after {duration(elapsed)}"
        if self.postfix:
            text += "; " + ", ".join(f"{k} {v}" for k, v in self.postfix.items())
        return text

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        if self.every is None:
            return
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.lines += 1
            self._print(self.line(now))

    def set_postfix(self, **values) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**values)
        else:
            self.postfix = values

    def close(self) -> None:
        """Close the bar; outside a terminal a last line when periodic lines were printed."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            return
        if self.every is not None and self.lines:
            now = self.clock()
            self._print(f"{self.desc}: {self.done}/{self.total} {self._plural(self.total)} "
                        f"after {duration(now - self.start)}")
            self.every = None
