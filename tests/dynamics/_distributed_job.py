"""One process of the two-process sweep test (test_distributed.py), or the single-process
reference. Usage: python _distributed_job.py OUT_DIR (single | PROCESS_ID PORT)

Runs a sweep of `gradient_flow` over a 4-device mesh (2 processes x 2 CPU devices, or one
process with 4), then a checkpointed sweep (process 0 writes), a resume after chunk 1 is
deleted, and a rerun with another chunk size (which must raise on every process). Writes
``OUT_DIR/result-<process>.npz``.
"""

import sys

import jax

out_dir, mode = sys.argv[1], sys.argv[2]
if mode == "single":
    jax.config.update("jax_num_cpu_devices", 4)
    pid = 0
else:
    pid, port = int(mode), int(sys.argv[3])
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        coordinator_bind_address=f"127.0.0.1:{port}",
        num_processes=2,
        process_id=pid,
        initialization_timeout=60,
        heartbeat_timeout_seconds=30,
        shutdown_timeout_seconds=30,
    )

import os  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flowax import dynamics, models  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

assert len(jax.devices()) == 4, jax.devices()
MODEL = models.deep_linear([3, 4, 2])
DATA = models.linear_teacher(jax.random.key(1), d_in=3, d_out=2, n=6, singular_values=(2.0, 1.0))


def loss(p):
    return 0.5 * jnp.mean(jnp.sum((MODEL.apply(p, DATA.x) - DATA.y) ** 2, axis=1))


def run(point):
    p = MODEL.init(jax.random.fold_in(jax.random.key(0), point["seed"]), point["scale"])
    return dynamics.gradient_flow(loss, p, t1=10.0, n_save=5)


grid = dynamics.product_grid(scale=np.geomspace(0.05, 1.0, 5), seed=np.arange(2))
plain = dynamics.sweep(run, grid, chunk_size=4, progress=False)
ckpt = os.path.join(out_dir, "ckpt")
first = dynamics.sweep(run, grid, chunk_size=4, progress=False, checkpoint=ckpt)
multihost_utils.sync_global_devices("written")
if pid == 0:
    os.unlink(os.path.join(ckpt, "chunk_000001.npz"))
multihost_utils.sync_global_devices("deleted")
resumed = dynamics.sweep(run, grid, chunk_size=4, progress=False, checkpoint=ckpt)
try:
    dynamics.sweep(run, grid, chunk_size=3, progress=False, checkpoint=ckpt)
    mismatch = "no error"
except ValueError as e:
    mismatch = str(e)
leaves = {}
for name, tree in (("plain", plain), ("first", first), ("resumed", resumed)):
    for j, x in enumerate(jax.tree_util.tree_leaves(tree)):
        leaves[f"{name}_{j}"] = np.asarray(x)
leaves["ok"] = np.asarray(plain.stats.ok)
leaves["loss"] = np.asarray(plain.values["loss"])
leaves["mismatch"] = np.array(mismatch)
leaves["files"] = np.array(sorted(os.listdir(ckpt)) if pid == 0 else [])
np.savez(os.path.join(out_dir, f"result-{pid}.npz"), **leaves)
print("done", pid, flush=True)
