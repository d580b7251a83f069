"""What commands print: lines flushed as they happen, and progress bars."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def say(text: str = "", *, stream: TextIO | None = None) -> None:
    """Print and flush at once: keys and URLs must reach a pipe or file as they happen."""
    print(text, file=stream or sys.stdout, flush=True)


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 10 % otherwise."""

    def __init__(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.label = label
        self.started = time.monotonic()
        self._last_decile = -1
        self._tty = sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        fraction = done / self.total
        rate = done / max(time.monotonic() - self.started, 1e-9)
        bar = "#" * int(fraction * 30)
        line = f"{self.label} [{bar:<30}] {done:,}/{self.total:,} ({rate:,.0f}/s)"
        if self._tty:
            end = "\n" if done >= self.total else ""
            print(f"\r{line}", end=end, file=sys.stderr, flush=True)
        elif int(fraction * 10) != self._last_decile:
            self._last_decile = int(fraction * 10)
            print(line, file=sys.stderr, flush=True)
