"""The runner seam: the in-process runner and the Ray Tune runner give the same answer.

Proposals come in fixed batches and early stopping compares only with earlier batches,
so neither the runner nor how many trials run at once can change what is proposed,
trained or chosen. The default tier runs whole searches in-process in seconds; the `ray`
tier proves the Ray runner, two trials at a time, agrees to the last digit.
"""

from __future__ import annotations

import json

import pandas as pd

from takd_search.search.run import run_search
from takd_search.search.summary import answer

SPACE = """
description: a 4-proposal digits search, two proposals per batch
data: {dataset: digits}
models: {family: plain, teacher: 6, student: 2, candidates: [4], max_tas: 1}
train: {epochs: 2, batch_size: 64}
distill: {T: [2.0, 8.0], alpha: {low: 0.2, high: 0.8}}
search: {n_trials: 4, seed: 0, batch: 2}
resources: {cpu: 1, concurrency: 2}
baselines: {confirm_top_k: 1, confirm_seeds: [1, 2], select_seeds: [3]}
"""


def _run(tmp_path, tag: str, runner: str, store: str = "store"):
    space = tmp_path / "tiny.yaml"
    space.write_text(SPACE)
    run_dir = run_search(
        str(space),
        results_dir=tmp_path / tag,
        store_root=tmp_path / store,
        runner=runner,
        write_report=False,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    trials = pd.read_csv(run_dir / "trials.csv")
    return summary, trials


def _block(summary: dict) -> list[str]:
    """The answer block: nothing in it may change between runners, concurrency or a warm
    store (seconds and the run folder are in the footer below it)."""
    return answer(summary).splitlines()


def _same_trials(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = ["phase", "trial_number", "status", "path", "hops", "val_acc"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def test_equal_proposals_per_procedure_and_a_warm_store_trains_nothing(tmp_path):
    first, trials = _run(tmp_path, "a", "inprocess")
    # every tuning procedure got the search's number of proposals
    assert first["budget"]["search"]["proposals"] == 4
    assert first["budget"]["blkd"]["proposals"] == 4
    assert first["budget"]["tune"]["proposals"] == (4 if first["heuristic_ta"] else 0)
    assert first["winner"] == "top1" and first["best"]["seeds"] == 2
    assert first["compute"]["hops_trained"] > 0
    # the dry run's trial counts are the run's own (one arithmetic: methods.trial_counts)
    from takd_search.search import dryrun
    from takd_search.search.plan import make_plan

    p = make_plan(str(tmp_path / "tiny.yaml"), overrides=None, results_dir=tmp_path / "d",
                  store_root=None, no_store=True, resume=None, device=None)  # fmt: skip
    planned = dryrun.plan(p.space, p.ds, p.sizes, p.train, tmp_path / "d", no_store=True)
    ran = trials.groupby("phase").size().to_dict()
    run_dir = tmp_path / "a" / next(d.name for d in (tmp_path / "a").iterdir())
    for ph in planned["phases"]:
        rows = json.loads((run_dir / "phases" / f"{ph['phase']}.json").read_text())
        assert len(rows) == ph["trials"], ph
        assert ran.get(ph["phase"], len(rows)) == len(rows)
    again, trials_again = _run(tmp_path, "b", "inprocess")  # the same store, now warm
    assert again["compute"]["hops_trained"] == 0
    assert _block(again) == _block(first)
    _same_trials(trials, trials_again)


def test_the_ray_runner_two_at_a_time_gives_the_in_process_answer(tmp_path, ray_runner):
    a, ta = _run(tmp_path, "inproc", "inprocess", store="s1")
    b, tb = _run(tmp_path, "ray", "ray", store="s2")  # its own store: everything retrained
    assert b["compute"]["hops_trained"] == a["compute"]["hops_trained"] > 0
    _same_trials(ta, tb)
    assert _block(b) == _block(a)


def test_a_fixed_phase_keeps_resources_concurrency_under_ray():
    """NoKD and the retraining phases hand Tune a generator, for which Tune ignores
    `max_concurrent_trials`: the generator must carry the limit itself (issue 25's CPU
    rehearsal ran two NoKD trials at once on two cores with `resources.concurrency: 1`).
    A search phase's Searcher is limited by Tune itself. No Ray is started."""
    from takd_search.search.phase import Phase
    from takd_search.search.tune_phase import _search

    for concurrency in (1, 3):
        phase = Phase(name="nokd", run=None, configs=[{}, {}, {}, {}], concurrency=concurrency)
        search, samples = _search(phase)
        assert search.max_concurrent == concurrency and samples == 1
