"""What every example shares: all CPU cores, ``--out`` and ``--quiet``, flowax's progress meter.

Importing this module makes JAX's CPU backend one device per core (`flowax.use_cpu_cores`, the
README's set-up), so it is imported before anything creates an array.
"""

from __future__ import annotations

import argparse

import flowax
from flowax.dynamics import Progress

flowax.use_cpu_cores()


def parse_args(doc: str, out: str, **extra) -> argparse.Namespace:
    """``--out PATH`` (the figure, default ``out``) and ``--quiet`` (no progress), plus
    ``extra = {flag: default}`` options."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--out", default=out, help="where to write the figure (PNG)")
    parser.add_argument("--quiet", action="store_true", help="no progress meter")
    for flag, default in extra.items():
        parser.add_argument(f"--{flag}", type=type(default), default=default)
    return parser.parse_args()


def progress(total: int, args: argparse.Namespace, desc: str) -> Progress:
    return Progress(total, desc=desc, enabled=not args.quiet)
