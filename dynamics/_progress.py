"""The one progress meter of flowax (sweeps, and the examples' outer loops)."""

from __future__ import annotations

import sys


class Progress:
    """A progress meter: tqdm when it is installed, else a one-line counter on stderr.

    Use as a context manager (``with Progress(n, desc="sweep") as bar: ... bar.update(k)``);
    ``enabled=False`` makes it silent (the examples' ``--quiet``).
    """

    def __init__(self, total: int, *, desc: str = "", enabled: bool = True, unit: str = "it"):
        self.bar = None
        self.enabled = bool(enabled)
        self.total, self.done, self.desc = int(total), 0, desc
        if self.enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)
            except ImportError:
                pass

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            print(f"\r{self.desc}: {self.done}/{self.total}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled:
            print(file=sys.stderr)
            self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
