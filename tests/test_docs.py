"""The docstring examples run, as written, on every public module."""

import doctest
import importlib
import pkgutil

import flowax
import jax
import jax.numpy as jnp
import numpy as np
import pytest


def _modules():
    names = []
    for info in pkgutil.walk_packages(flowax.__path__, "flowax."):
        names.append(info.name)
    return sorted(names)


def _globals(module):
    env = {"jax": jax, "jnp": jnp, "np": np}
    for pkg in (
        flowax.models,
        flowax.dynamics,
        flowax.dynamics.measures,
        flowax.dynamics.transport,
        flowax.kernels,
    ):
        env.update({n: getattr(pkg, n) for n in pkg.__all__})
    env.update(vars(module))
    return env


MODULES = [
    m
    for m in _modules()
    if ">>>" in (importlib.import_module(m).__doc__ or "")
    or any(
        ">>>" in (getattr(obj, "__doc__", None) or "")
        for obj in vars(importlib.import_module(m)).values()
    )
]


def test_some_modules_have_examples():
    assert len(MODULES) >= 8, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name, globs=_globals(module)) if t.examples]
    for t in tests:
        if t.name.split(".")[-1].startswith("_") or "._" in t.name.replace(name, ""):
            continue
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


PACKAGES = [
    "flowax",
    "flowax.models",
    "flowax.dynamics",
    "flowax.dynamics.measures",
    "flowax.dynamics.transport",
    "flowax.dynamics.games",
    "flowax.dynamics.diffusion",
    "flowax.kernels",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_a_docstring(package):
    """The documentation site renders every name of every ``__all__`` from its docstring."""
    import inspect

    mod = importlib.import_module(package)
    assert (mod.__doc__ or "").strip(), package
    missing = []
    for name in mod.__all__:
        obj = getattr(mod, name)
        if isinstance(obj, (dict, tuple, list, str, int, float)):  # constants: the module says
            continue
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(name)
    assert not missing, f"{package}: no docstring for {missing}"
