"""Every ```python snippet of README.md and docs/*.md runs as written.

Issue 18, Broken 6: docs/own_teacher.md's data snippet needed pytest and an existing
data/ folder. Here each snippet runs in a fresh interpreter, in an empty folder that holds
only what a reader of that page has: a real run folder made by `takd-search run` (a tiny
digits search) under the name the docs use, and its exported student. A snippet that
uses the reader's own arrays gets them from SETUP (named by a line of the snippet), so
nothing is skipped: a new snippet runs too, and fails here if it does not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from takd_search.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
RUN_NAME = "results/digits_vgg-20260101-120000"  # the run folder the docs name

# what the reader brings, for snippets that use it: (a line of the snippet, setup code)
SETUP = [
    (
        "x_train=x_train,",  # own_teacher.md: your own 28x28 images as an npz
        "import numpy as np\n"
        "from takd_search.examples import make_letters\n"
        "z = np.load(make_letters('mine.npz', per_class=4, test_per_class=2, size=28))\n"
        "x_train, y_train, x_test, y_test = (z[k] for k in "
        "('x_train', 'y_train', 'x_test', 'y_test'))\n",
    ),
    (
        "images_0_to_1",  # results.md: images to classify, [N, C, H, W] in [0, 1]
        "import torch\nimages_0_to_1 = torch.rand(4, 1, 8, 8)\n",
    ),
]

TINY = """
description: the docs' run folder, at test size
data: {dataset: digits}
models: {family: plain, teacher: 6, student: 2, candidates: [4], max_tas: 1}
train: {epochs: 2, batch_size: 64}
distill: {T: [2.0, 8.0], alpha: {low: 0.2, high: 0.8}}
search: {n_trials: 3, seed: 0}
resources: {cpu: 1}
baselines: {confirm_top_k: 1, confirm_seeds: [1, 2]}
"""


def snippets() -> list[tuple[str, int, str]]:
    out = []
    for page in PAGES:
        for i, m in enumerate(FENCE.finditer(page.read_text())):
            out.append((page.relative_to(ROOT).as_posix(), i, m.group(1)))
    return out


SNIPPETS = snippets()


def test_the_docs_have_python_snippets():
    pages = {p for p, _, _ in SNIPPETS}
    assert {"README.md", "docs/own_teacher.md", "docs/results.md"} <= pages


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """A folder as a reader has it after the README: a finished run under the docs'
    name (and results/a, results/b for load_many), its student exported as student.pt."""
    home = tmp_path_factory.mktemp("reader")
    space = tmp_path_factory.mktemp("space") / "digits_vgg.yaml"
    space.write_text(TINY)
    res = tmp_path_factory.mktemp("made")
    assert main(["run", "--space", str(space), "--results", str(res), "--no-report"]) == 0
    (run,) = [d for d in res.iterdir() if d.name.startswith("digits_vgg-")]
    (home / "results").mkdir()
    for name in (RUN_NAME, "results/a", "results/b"):
        (home / name).symlink_to(run, target_is_directory=True)
    assert main(["export", str(run), "--out", str(home / "student.pt")]) == 0
    return home


@pytest.mark.slow
@pytest.mark.parametrize("page,i,code", SNIPPETS, ids=[f"{p}#{i}" for p, i, _ in SNIPPETS])
def test_snippet_runs_as_written(page, i, code, reader, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name in ("results", "student.pt", "student.json"):
        (cwd / name).symlink_to(reader / name)
    setup = "".join(s for line, s in SETUP if line in code)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [sys.executable, "-c", setup + code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"{page} snippet {i} failed:\n{code}\n{r.stderr[-3000:]}"
