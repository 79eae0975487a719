"""The runner seam: what executes a phase's trials. The phases ask; a runner runs.

A runner has `name`, `start(address, run_dir, resources) -> trials at once` (after which
`resources` describes what it runs on), `run_phase(phase, root) -> rows` (phase.py) and
`logs() -> folder or None`. Two exist and give the same rows for the same space:

- 'ray' (tune_phase.TuneRunner, the default): each phase a Ray Tune experiment, on a
  local Ray the tool starts or on a cluster; trials in parallel, restored after a kill;
- 'inprocess' (inprocess.InProcessRunner): every trial in this process, one at a time, no
  Ray; for debugging, notebooks, the orchestration's tests and the calibration benchmark.

Proposals come in fixed batches (proposer.py) and early stopping compares a trial only with
earlier batches (rungs.py), so the runner and its concurrency never change the answer.
"""

from __future__ import annotations

import os

from takd_search.errors import UserError

RUNNERS = ("ray", "inprocess")
ENV = "TAKD_SEARCH_RUNNER"


def make_runner(runner=None, address: str | None = None):
    """A runner object from a name ('ray', 'inprocess'), an object, or None: 'ray' for a
    cluster `address`, else $TAKD_SEARCH_RUNNER, else 'ray'. Ray is imported only for the
    Ray runner."""
    if runner is not None and not isinstance(runner, str):
        return runner
    on_cluster = address not in (None, "", "local")
    name = runner or ("ray" if on_cluster else os.environ.get(ENV)) or "ray"
    if name == "inprocess":
        from takd_search.search.inprocess import InProcessRunner

        return InProcessRunner()
    if name == "ray":
        from takd_search.search.tune_phase import TuneRunner  # Ray: only for this runner

        return TuneRunner()
    raise UserError(f"unknown runner {name!r}: use one of {', '.join(RUNNERS)}")
