"""Package hygiene: the version comes from the metadata, the package is typed, the changelog
names the version."""

import pathlib
import tomllib
from importlib import metadata, resources

import flowax

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_version_is_the_metadata_version_and_the_pyproject_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert flowax.__version__ == metadata.version("flowax") == pyproject["project"]["version"]


def test_py_typed_ships_with_the_package():
    assert resources.files("flowax").joinpath("py.typed").is_file()


def test_changelog_has_an_entry_for_this_version():
    assert f"## [{flowax.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_pyproject_has_classifiers_and_urls():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "Typing :: Typed" in project["classifiers"]
    assert {"Homepage", "Documentation", "Source"} <= set(project["urls"])


def test_every_benchmark_takes_quick():
    """A short accelerator lease runs every benchmark with --quick (shared/tools/gpu-check.sh)."""
    for path in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        assert '"--quick"' in path.read_text(), path.name


def test_docs_site_lists_every_example_and_subpackage():
    site = (ROOT / "mkdocs.yml").read_text()
    for ex in sorted((ROOT / "examples").glob("*.py")):
        if not ex.name.startswith("_"):
            assert f"examples/{ex.stem}.md" in site, ex.name
            assert (ROOT / "docs" / "examples" / f"{ex.stem}.md").is_file(), ex.name
    for page in ("models", "dynamics", "measures", "transport", "games", "diffusion", "kernels"):
        assert f"api/{page}.md" in site
