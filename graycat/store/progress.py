"""A download's progress on a terminal: size, speed and time left, on one line redrawn in place (a line every few
seconds when the output is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from graycat.store.folder import human

SPEED_AFTER_S = 0.5  # the speed shown once this much of the download has been seen


class ProgressLine:
    """A `Progress` callback that draws `name`'s download on `out` (stderr by default)."""

    def __init__(self, name: str, out: TextIO | None = None) -> None:
        self.name = name
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self._every = 0.1 if self.tty else 2.0
        self._began: tuple[float, int] | None = None
        self._shown = 0.0
        self._last = ""

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self._began is None:
            self._began = (now, done)  # a resumed download's speed counts this run's bytes only
        if now - self._shown < self._every and done != total:
            return
        self._shown = now
        self._last = self.line(done, total, now)
        self.out.write(f"\r{self._last}\033[K" if self.tty else self._last + "\n")
        self.out.flush()

    def line(self, done: int, total: int | None, now: float) -> str:
        began, at_start = self._began or (now, done)
        speed = (done - at_start) / (now - began) if now - began >= SPEED_AFTER_S else 0.0
        parts = [f"pulling {self.name}", f"{human(done)} / {human(total)}" if total else human(done)]
        if total:
            parts.append(f"{100 * done / total:.0f}%")
        if speed > 0:
            parts.append(f"{human(speed)}/s")
        if total and speed > 0 and done < total:
            parts.append(f"{_duration((total - done) / speed)} left")
        return "  ".join(parts)

    def end(self) -> None:
        if self.tty and self._last:
            self.out.write("\n")
            self.out.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
