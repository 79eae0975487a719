"""The wheel a user installs (not an editable checkout) ships the search spaces.

Issue 18, Missing 1: pyproject.toml packaged `takd_search/spaces/*.yaml` while the spaces
live in the top-level `search_spaces/`, so `pip install .` found no space at all. Here a
wheel is built from a copy of the source, installed (--no-deps) into a fresh venv that reuses this
environment's dependencies (a .pth naming its site-packages), and `takd-search` is run
from another folder, where no `search_spaces/` is in reach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return r


@pytest.mark.slow
def test_a_wheel_install_finds_the_shipped_spaces(tmp_path):
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(
        ".git", "results", "build", "*.egg-info", "__pycache__", ".*cache", "bench"
    )
    # ./data (downloaded data sets) stays behind; the takd_search/data package is copied
    shutil.copytree(
        ROOT,
        src,
        ignore=lambda d, names: {
            *skip(d, names),
            *({"data"} & set(names) if d == str(ROOT) else ()),
        },
    )
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "-q", "-w", str(wheels), str(src)])  # fmt: skip
    (wheel,) = wheels.glob("takd_search-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "search_spaces").glob("*.yaml"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("takd_search/spaces/")) == (
        shipped
    )
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    py = venv / "bin" / "python"
    # this environment's dependencies (torch, ray, ...), appended after the venv's own
    # site-packages: a path line in a .pth adds the folder without running its .pth files,
    # so the shared venv's editable takd_search finder stays out
    site = _run([str(py), "-c", "import site; print(site.getsitepackages()[0])"]).stdout
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(site.strip()) / "reuse_deps.pth").write_text("\n".join(deps) + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the shared venv's editable install and PYTHONPATH point at a checkout: drop both so
    # that the wheel is what runs
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = _run([str(py), "-c", "import takd_search; print(takd_search.__file__)"],
                 cwd=elsewhere, env=env).stdout  # fmt: skip
    assert where.startswith(str(venv)), where
    r = _run([str(venv / "bin" / "takd-search"), "spaces"], cwd=elsewhere, env=env)
    for name in shipped:
        assert name.removesuffix(".yaml") in r.stdout
    assert str(venv) in r.stdout  # found inside the installed package
    bad = subprocess.run([str(venv / "bin" / "takd-search"), "run", "--space", "digits_vg"],
                         cwd=elsewhere, env=env, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "digits_vgg" in bad.stderr
    dry = _run([str(venv / "bin" / "takd-search"), "run", "--space", "digits_vgg", "--dry-run",
                "--trials", "2", "--epochs", "1"], cwd=elsewhere, env=env)  # fmt: skip
    assert "search   2 trials" in dry.stdout and not any(elsewhere.iterdir())
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    mod = _run([str(py), "-m", "takd_search", "--version"], cwd=elsewhere, env=env)
    assert mod.stdout.startswith("takd-search ")


# ---- what pyproject declares (fast: read from the source) -----------------------------------
# import name -> distribution, where they differ
DIST = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn"}


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _dist(req: str) -> str:
    import re

    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower()


def test_every_imported_package_is_declared():
    """Each third-party package takd_search imports, at any level, is a dependency or in an
    extra (issue 23: scipy and Pillow were imported but not declared)."""
    import ast

    project = _pyproject()
    required = {_dist(r) for r in project["dependencies"]}
    extras = {_dist(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    imported = set()
    for path in (ROOT / "takd_search").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third = {m for m in imported if m not in sys.stdlib_module_names and m != "takd_search"}
    undeclared = {m for m in third if DIST.get(m, m).lower() not in required | extras}
    assert not undeclared, undeclared
    for core in ("scipy", "pillow", "numpy", "torch", "ray", "optuna"):
        assert core in required, core
    assert {"onnx", "timm", "tensorboard", "mlflow", "pyarrow"} <= extras


def test_license_and_lower_bounds():
    project = _pyproject()
    assert project["license"] == "MIT"  # an SPDX expression
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    deps = {_dist(r): r for r in project["dependencies"]}
    assert (
        deps["ray"] == "ray[tune]>=2.52"
    )  # the token API (ray._raylet.AuthenticationTokenLoader)
    from ray._raylet import AuthenticationTokenLoader  # noqa: F401  (what needs 2.52)


def test_python_m_takd_search_is_the_cli():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "takd_search", "--version"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("takd-search "), r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "takd_search", "nope"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 2 and "invalid choice" in r.stderr
