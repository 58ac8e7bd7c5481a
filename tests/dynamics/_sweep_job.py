"""A checkpointed sweep run as a separate process by test_checkpoint.py (killed, pre-empted,
resumed). Usage: python _sweep_job.py CHECKPOINT_DIR OUT.npz [--sleep S]

Prints "computed K" (chunks computed by this run) and, when it finishes, writes the resumed
result and an uninterrupted run's result (same process) to OUT.npz.
"""

import argparse
import logging
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flowax import dynamics

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("out")
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()

SCALES = np.linspace(0.2, 1.8, 12)


def pause(_):
    time.sleep(args.sleep)


def run(scale):
    if args.sleep:
        jax.debug.callback(pause, scale)
    loss = lambda p: 0.5 * scale * jnp.sum(p**2) + 0.25 * jnp.sum(p**4)  # noqa: E731
    return dynamics.gradient_descent(loss, jnp.linspace(-1.0, 1.0, 4), lr=0.1, steps=50, n_save=6)


class Count(logging.Handler):
    computed = 0

    def emit(self, record):
        if "committed chunk" in record.getMessage():
            Count.computed += 1
            print("committed", flush=True)


logging.getLogger("flowax.sweep").addHandler(Count())
logging.getLogger("flowax.sweep").setLevel(logging.INFO)
try:
    out = dynamics.sweep(
        run, SCALES, chunk_size=2, checkpoint=args.checkpoint, fingerprint="job", progress=False
    )
except dynamics.SweepPreempted as e:
    print("preempted", Count.computed, e, flush=True)
    sys.exit(3)
print("computed", Count.computed, flush=True)
args.sleep = 0.0
ref = dynamics.sweep(run, SCALES, chunk_size=2, progress=False)
leaves = {f"out_{j}": np.asarray(x) for j, x in enumerate(jax.tree_util.tree_leaves(out))}
leaves |= {f"ref_{j}": np.asarray(x) for j, x in enumerate(jax.tree_util.tree_leaves(ref))}
np.savez(args.out, **leaves)
