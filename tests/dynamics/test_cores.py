"""use_cpu_cores: one CPU device per core when called first, a clear error when called late;
sweep warns once on a single CPU device of a multi-core host. Each case needs a fresh JAX, so
it runs in a subprocess."""

import json
import subprocess
import sys
import textwrap

import pytest
from flowax import dynamics

SCRIPT = textwrap.dedent(
    """
    import json, warnings
    import flowax
    import jax, jax.numpy as jnp
    n = flowax.use_cpu_cores(2)
    devices = len(jax.devices())
    out = flowax.sweep(lambda s: s * 2.0, jnp.arange(6.0), progress=False)
    try:
        flowax.use_cpu_cores(3)
        late = "no error"
    except RuntimeError as e:
        late = str(e)
    print(json.dumps({"n": n, "devices": devices, "late": late, "out": out.tolist()}))
    """
)

WARN = textwrap.dedent(
    """
    import json, warnings
    import jax.numpy as jnp
    from flowax import dynamics
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(3):
            dynamics.sweep(lambda s: s + 1.0, jnp.arange(4.0), progress=False)
    print(json.dumps([str(x.message) for x in w]))
    """
)


def _run(script):
    env_py = [sys.executable, "-c", script]
    out = subprocess.run(env_py, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_use_cpu_cores_before_and_after_jax_starts():
    r = _run(SCRIPT)
    assert r["n"] == 2 and r["devices"] == 2
    assert r["out"] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert r["late"].startswith("use_cpu_cores: JAX's backends are already initialized")


def test_sweep_warns_once_on_one_cpu_device_of_a_multicore_host():
    if dynamics._multiprocess.cpu_count() < 2:
        pytest.skip("a single-core host: nothing to warn about")
    messages = [m for m in _run(WARN) if "use_cpu_cores" in m]
    assert len(messages) == 1 and "1 CPU device of a host with" in messages[0]


@pytest.mark.parametrize("n", [0, -2, 1.5, "all"])
def test_use_cpu_cores_bad_n(n):
    with pytest.raises(ValueError, match=r"^n: "):
        dynamics.use_cpu_cores(n)
