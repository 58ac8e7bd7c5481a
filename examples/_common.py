"""What every example shares: ``--out`` and ``--quiet``, and flowax's one progress meter."""

from __future__ import annotations

import argparse

from flowax.dynamics import Progress


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
