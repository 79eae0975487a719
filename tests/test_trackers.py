"""Trackers: a real search writes files TensorBoard and MLflow read back, one curve per
hop of every trial, the trial's hyper-parameters, and the run's answer."""

from __future__ import annotations

import optuna
import pytest

from takd_search.errors import UserError
from takd_search.search.run import run_search
from takd_search.trackers import make_trackers

SPACE = """
description: a 2-proposal digits search, tracked
data: {dataset: digits}
models: {family: plain, teacher: 6, student: 2, candidates: [4], max_tas: 1}
train: {epochs: 2, batch_size: 64}
distill: {T: [2.0, 8.0], alpha: {low: 0.2, high: 0.8}}
search: {n_trials: 2, seed: 0, batch: 2, trackers: [tensorboard]}
baselines: {confirm_top_k: 1, confirm_seeds: [1], select_seeds: []}
"""


class Calls:
    """An API caller's callback: records every finished trial, and how many trials of a
    searched phase study.db already holds when it hears of one (the mirror is live)."""

    def __init__(self, results):
        self.results, self.seen, self.in_study = results, [], []

    def trial(self, phase, row):
        self.seen.append((phase, row["trial_number"], row["status"]))
        if phase in ("search", "blkd"):
            (db,) = self.results.glob("*/study.db")
            study = optuna.load_study(study_name=phase, storage=f"sqlite:///{db}")
            self.in_study.append((phase, len(study.trials)))


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracked")
    (tmp / "s.yaml").write_text(SPACE)
    calls = Calls(tmp / "results")
    run_dir = run_search(
        str(tmp / "s.yaml"),
        results_dir=tmp / "results",
        store_root=tmp / "store",
        runner="inprocess",
        trackers=["mlflow"],  # besides the space's tensorboard
        callbacks=[calls],
        write_report=False,
    )
    return run_dir, calls


def test_tensorboard_holds_one_curve_per_hop_and_the_answer(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = tracked
    trials = sorted((run_dir / "tensorboard" / "search").iterdir())
    assert len(trials) == 2
    for folder in trials:
        ev = EventAccumulator(str(folder))
        ev.Reload()
        hops = [t for t in ev.Tags()["scalars"] if t.startswith("hop")]
        path = folder.name.split("_", 1)[1]  # 0000_plain6>plain4>plain2 or 0001_plain6>plain2
        assert len(hops) == path.count(">") + 1  # the teacher's curve too
        student = [t for t in hops if t.endswith("plain2/val_acc")][0]
        assert [e.step for e in ev.Scalars(student)] == [1, 2]
        assert all(0.0 <= e.value <= 1.0 for e in ev.Scalars(student))
    ev = EventAccumulator(str(run_dir / "tensorboard" / "answer"))
    ev.Reload()
    assert ev.Tags()["tensors"]  # the answer as text


def test_mlflow_store_has_a_run_per_trial_with_params_and_curves(tracked):
    from mlflow.tracking import MlflowClient

    run_dir, _ = tracked
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir.resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"takd-search/{run_dir.name}")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.phase = 'search'")
    assert len(runs) == 2
    for r in runs:
        path = r.data.params["path"]
        curves = [k for k in client.get_run(r.info.run_id).data.metrics if k.startswith("hop")]
        assert len(curves) == path.count(">") + 1
        assert "hop1_T" in r.data.params
    answer = client.search_runs([exp.experiment_id], filter_string="tags.phase = 'answer'")
    assert len(answer) == 1
    # artifacts beside the database, not in ./mlruns of wherever the run was started
    rid = answer[0].info.run_id
    artifacts = run_dir.resolve() / "mlruns" / rid / "artifacts"
    assert answer[0].info.artifact_uri == artifacts.as_uri()
    assert (run_dir / "mlruns" / rid / "artifacts" / "answer.txt").is_file()


def test_callbacks_hear_every_trial_and_study_db_holds_them(tracked):
    run_dir, calls = tracked
    phases = [p for p, _, _ in calls.seen]
    assert phases.count("search") == 2 and phases.count("blkd") == 2
    # each searched trial is in study.db by the time callbacks hear of it
    assert calls.in_study == [("search", 1), ("search", 2), ("blkd", 1), ("blkd", 2)]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert len(study.trials) == 2


def test_a_tracker_not_installed_or_unknown_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown tracker 'neptune'"):
        make_trackers(["neptune"], tmp_path)
    import builtins

    real = builtins.__import__

    def no_wandb(name, *a, **kw):
        if name == "wandb":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(UserError, match="needs the wandb package: pip install wandb"):
        make_trackers(["wandb"], tmp_path)
