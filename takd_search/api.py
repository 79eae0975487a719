"""The Python API: `takd_search.run(...)`, the same search as `takd-search run`.

    import takd_search
    summary = takd_search.run("mnist1d_cnn_mlp", overrides={"search.n_trials": 4})
    summary["best"]["path"], summary["best"]["test_mean"]

Nothing happens on import: Ray, torch and Optuna load when `run` is called, and no
environment variable or warning filter is changed (a Ray the tool starts gets its
settings for its own lifetime only). Progress lines go through `logging` (logger
`takd_search`): `logging.basicConfig(level=logging.INFO)` shows them; the CLI prints them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml


def run(
    space: str | os.PathLike | dict,
    *,
    overrides: dict | None = None,
    results: str | os.PathLike = "results",
    store: str | os.PathLike | None = None,
    runner: str | object | None = None,
    trackers=(),
    callbacks=(),
    address: str | None = None,
    new: bool = False,
    report: bool = True,
) -> dict:
    """Run (or resume: the same call twice) one search; returns its summary (summary.json
    as a dict, with `run_dir`).

    space: a shipped space's name, a .yaml path, or the space itself as a dict (kept as
    RESULTS/.spaces/<hash>.yaml, so the same dict resumes the same run).
    overrides: dotted keys of the space file, e.g. {"train.lr": 0.01} (like --set).
    runner: 'ray' (default), 'inprocess' (no Ray, one trial at a time) or a runner object.
    trackers: 'tensorboard', 'mlflow', 'wandb'. callbacks: objects with `trial(phase, row)`
    (and optionally `answer(summary, text)`), told as each trial finishes.
    Raises takd_search.errors.UserError (bad input, nothing written), search.RunFailed,
    search.Interrupted (state kept: call again to resume).
    """
    from takd_search.search.run import run_search  # Ray/torch: only when a run is asked for

    ref = _space_file(space, Path(results)) if isinstance(space, dict) else str(space)
    run_dir = run_search(
        ref,
        overrides=overrides,
        results_dir=results,
        store_root=store,
        address=address,
        new=new,
        runner=runner,
        trackers=trackers,
        callbacks=callbacks,
        write_report=report,
        print_answer=False,
    )
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return {**summary, "run_dir": str(run_dir)}


def _space_file(space: dict, results: Path) -> str:
    """A space given as a dict, as a file named by its content (the run folder keeps its
    text; the same dict finds the same unfinished run)."""
    text = yaml.safe_dump(space, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = results / ".spaces" / f"{space.get('name') or 'space'}-{digest}.yaml"
    if not path.exists():
        from takd_search.atomic import write_atomic

        write_atomic(path, text)
    return str(path)
