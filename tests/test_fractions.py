"""The per-hop early stops are fractions of a hop's epochs and named so (`kd_fraction`,
`parent_fraction`); the engine keeps whole epochs (`kd_epochs`, `parent_epoch`). One
conversion (search/fractions.py), hop store keys that did not move, and space files and
run folders of the old names still read (issue 22, item 3)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from report_runs import make_run, write_curves

from takd_search import models, results
from takd_search.atomic import write_json
from takd_search.cli import build_parser
from takd_search.config import load_space
from takd_search.config.files import SpecError
from takd_search.engine.hop import HopParams, HopSpec, TrainConfig
from takd_search.report.analyze import analyze
from takd_search.report.build import report
from takd_search.search import resume as saved_run
from takd_search.search import run_dir as run_folder
from takd_search.search.fractions import (
    HopFractions,
    hop_params,
    upgrade_config,
    upgrade_hops,
)
from takd_search.search.inprocess import InProcessRunner
from takd_search.search.phase import Phase
from takd_search.search.settings import RunSettings
from takd_search.search.space import PathSpace, snapshot_epochs
from takd_search.search.stop import Interrupted

# ---- the hop store's keys ------------------------------------------------------------
# Computed on main at 6d1edb4, BEFORE the rename, from the same two hops written with the
# old names ({"kd_epochs": 0.5, "parent_epoch": 0.25} and 1.0/1.0 through
# space.resolve_hops, 8 epochs, then HopSpec as below). A trained hop's key must never
# move with a rename: users' stores stay warm. Do not update these numbers to make the
# test pass; a different key means every stored hop would be trained again.
GOLDEN_KEYS = ["2ac4c6908b7492bb4d13abadd9375c02", "bfea77e6508743a3574f3ff42aa67616"]
HOPS = [
    {"T": 4.0, "alpha": 0.5, "kd_fraction": 0.5, "parent_fraction": 0.25},
    {"T": 2.0, "alpha": 0.3, "kd_fraction": 1.0, "parent_fraction": 1.0},
]


def _key(p: HopParams) -> str:
    return HopSpec(
        data="0123abcd",
        val_fraction=0.1,
        split_seed=0,
        model="plain4",
        train=TrainConfig(epochs=8),
        seed=0,
        parents=("p1",),
        T=p.T,
        alpha=p.alpha,
        kd_epochs=p.kd_epochs,
        parent_epoch=p.parent_epoch,
    ).key


def test_the_store_keys_of_a_known_hop_are_unchanged():
    params = hop_params(HOPS, 8)
    assert params == [HopParams(4.0, 0.5, 4, 2), HopParams(2.0, 0.3, 8, None)]
    assert [_key(p) for p in params] == GOLDEN_KEYS
    # the same hops under the old names, as an old run folder holds them
    old = [{"T": h["T"], "alpha": h["alpha"], "kd_epochs": h["kd_fraction"],
            "parent_epoch": h["parent_fraction"]} for h in HOPS]  # fmt: skip
    assert [_key(p) for p in hop_params(upgrade_hops(old), 8)] == GOLDEN_KEYS


def test_one_conversion_from_fractions_to_whole_epochs():
    h = HopFractions(T=2.0, alpha=0.1, kd_fraction=0.5, parent_fraction=0.75)
    assert h.to_params(20) == HopParams(T=2.0, alpha=0.1, kd_epochs=10, parent_epoch=15)
    assert HopFractions(kd_fraction=0.01, parent_fraction=0.01).to_params(10) == HopParams(
        kd_epochs=1, parent_epoch=1
    )  # at least one epoch
    assert HopFractions().to_params(7).parent_epoch is None  # 1.0: the selected weights
    assert HopFractions.of({**HOPS[0], "lambda_takd": 0.5}) == HopFractions(4.0, 0.5, 0.5, 0.25)
    assert HopFractions.of(HOPS[0]).as_dict() == HOPS[0]


def test_old_names_in_a_trial_config_are_read_under_the_new():
    cfg = {
        "path": "plain10>plain4>plain2",
        "ta_plain4": True,
        "T_plain4": 2.0,
        "kd_epochs_plain4": 0.5,
        "p0_parent_epoch": 0.5,
        "kd_epochs": 1.0,
        "hops": [{"T": 2.0, "alpha": 0.5, "kd_epochs": 0.5, "parent_epoch": 1.0}],
        "case": {"hops": [{"T": 1.0, "alpha": 0.1, "kd_epochs": 1.0, "parent_epoch": 0.5}]},
    }
    new = upgrade_config(cfg)
    assert list(new) == ["path", "ta_plain4", "T_plain4", "kd_fraction_plain4",
                         "p0_parent_fraction", "kd_fraction", "hops", "case"]  # fmt: skip
    assert new["hops"] == [{"T": 2.0, "alpha": 0.5, "kd_fraction": 0.5, "parent_fraction": 1.0}]
    assert new["case"]["hops"][0]["parent_fraction"] == 0.5
    assert upgrade_config(new) == new  # new names stay as they are


# ---- space files -----------------------------------------------------------------------
SPACE = """
models: {family: plain, teacher: 10, student: 2, candidates: [8, 6, 4], max_tas: 2}
train: {epochs: 8}
distill: {T: [2.0, 4.0], alpha: 0.5, KD: [0.5, 1.0], PARENT: [0.25, 1.0]}
search: {n_trials: 4, sampler: grid}
"""


def _write(d: Path, kd: str, parent: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / "frac_space.yaml"
    p.write_text(SPACE.replace("KD", kd).replace("PARENT", parent))
    return p


def test_an_old_space_file_loads_to_the_same_plan(tmp_path):
    from takd_search.search.plan import make_plan

    new_file = _write(tmp_path / "new", "kd_fraction", "parent_fraction")
    old_file = _write(tmp_path / "old", "kd_epochs", "parent_epoch")
    new, _, _ = load_space(str(new_file))
    old, _, _ = load_space(str(old_file))
    assert old == new and old.distill.kd_fraction == [0.5, 1.0]
    kw = dict(overrides={}, results_dir=tmp_path / "r", store_root=None, no_store=True,
              resume=None, device="cpu")  # fmt: skip
    p_new, p_old = make_plan(str(new_file), **kw), make_plan(str(old_file), **kw)
    assert p_old.space_json == p_new.space_json
    assert "kd_fraction" in p_new.space_json["distill"]
    assert "kd_epochs" not in json.dumps(p_new.space_json)
    assert p_old.train == p_new.train and p_old.sizes == p_new.sizes
    assert snapshot_epochs(p_old.space, 8) == snapshot_epochs(p_new.space, 8) == (2,)
    ps_new, ps_old = PathSpace(p_new.space, p_new.sizes), PathSpace(p_old.space, p_old.sizes)
    assert ps_old.grid() == ps_new.grid() and "kd_fraction" in ps_new.grid()
    fixed = {"ta_plain8": False, "ta_plain6": True, "ta_plain4": False, "T": 2.0,
             "kd_fraction": 0.5, "parent_fraction": 0.25}  # fmt: skip
    cfg = ps_old(optuna.trial.FixedTrial(fixed))
    assert cfg == ps_new(optuna.trial.FixedTrial(fixed))
    assert cfg["hops"][0] == {"T": 2.0, "alpha": 0.5, "kd_fraction": 0.5, "parent_fraction": 0.25}


def test_both_names_of_one_key_are_refused_and_an_old_set_key_sets_the_new(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text(SPACE.replace("KD", "kd_fraction").replace("PARENT", "parent_fraction")
                    .replace("alpha: 0.5,", "alpha: 0.5, kd_epochs: 0.5,"))  # fmt: skip
    with pytest.raises(SpecError, match="kd_epochs is the old name of kd_fraction"):
        load_space(str(both))
    f = _write(tmp_path, "kd_fraction", "parent_fraction")
    space, _, _ = load_space(str(f), {"distill.kd_epochs": 0.75})  # --set, old key
    assert space.distill.kd_fraction == 0.75


def test_the_old_run_path_flags_still_work_and_are_not_listed():
    parser = build_parser()
    base = ["run-path", "--path", "10-2", "--family", "plain"]
    new = parser.parse_args([*base, "--kd-fraction", "0.5", "--parent-fraction", "0.25"])
    old = parser.parse_args([*base, "--kd-epochs", "0.5", "--parent-epoch", "0.25"])
    assert (old.kd_fraction, old.parent_fraction) == (new.kd_fraction, new.parent_fraction)
    assert (new.kd_fraction, new.parent_fraction) == (0.5, 0.25)
    sub = next(a for a in parser._subparsers._group_actions[0].choices.items()
               if a[0] == "run-path")[1]  # fmt: skip
    text = sub.format_help()
    assert "--kd-fraction" in text and "--kd-epochs" not in text


# ---- run folders ---------------------------------------------------------------------


def _to_old(src: Path, dst: Path) -> Path:
    """A copy of run folder `src` as the version before the rename wrote it: the old
    names wherever the new ones are (the engine's `hop_rows` had the old names already)."""
    shutil.copytree(src, dst)
    for f in dst.rglob("*"):
        if f.suffix in (".csv", ".json"):
            text = f.read_text()
            f.write_text(
                text.replace("kd_fraction", "kd_epochs").replace("parent_fraction", "parent_epoch")
            )
    return dst


def _add_hops(d: Path) -> None:
    """phases/search.json as a search writes it: configs with hops (fractions) and the
    searched parameters, hop_rows with the engine's whole epochs."""
    rows = json.loads((d / "phases" / "search.json").read_text())
    for r in rows:
        hops = [{"T": 2.0, "alpha": r["config"]["alpha"], "kd_fraction": 0.5,
                 "parent_fraction": 1.0}] * 2  # fmt: skip
        r["config"].update(hops=hops, kd_fraction=0.5, ta_plain4=True)
        for h in r["metrics"]["hop_rows"][1:]:
            h.update(kd_epochs=3, parent_epoch=None)
    write_json(d / "phases" / "search.json", rows)


def test_an_old_run_folder_reads_as_a_new_one(tmp_path):
    new = make_run(tmp_path / "new")
    write_curves(new)
    _add_hops(new)
    old = _to_old(new, tmp_path / "old" / new.name)
    header = (old / "trials.csv").read_text().splitlines()[0]
    assert "kd_epochs_1" in header and "kd_fraction" not in header  # really the old layout
    assert '"kd_epochs"' in (old / "space.json").read_text()

    # the tables
    t_old, t_new = results.load(old), results.load(new)
    for kind in results.SCHEMAS:
        pd.testing.assert_frame_equal(t_old[kind], t_new[kind])
    assert t_old["trials"]["kd_fraction_1"].notna().all()
    assert json.loads(t_old["trials"].loc[0, "hops"])[0]["parent_fraction"] == 1.0
    # the JSON files
    r_old, r_new = results.open_run(old), results.open_run(new)
    assert r_old.space == r_new.space and "kd_fraction" in r_old.space["distill"]
    assert {**r_old.summary, "run_dir": None} == {**r_new.summary, "run_dir": None}
    assert r_old.summary["best"]["hops"][0]["kd_fraction"] == 1.0
    rows = results.read_json(old, "phases/search.json")
    assert rows == results.read_json(new, "phases/search.json")
    assert (
        rows[0]["config"]["hops"][0]["kd_fraction"] == 0.5 and "kd_fraction" in rows[0]["config"]
    )
    # the engine's whole epochs keep their names
    assert rows[0]["metrics"]["hop_rows"][1]["kd_epochs"] == 3

    # report, analyze, status: the same words and numbers
    md_new = (Path(report(new)["report"])).read_text()
    md_old = (Path(report(old)["report"])).read_text()
    assert md_old.replace(str(old), str(new)) == md_new
    a_old = analyze([old], out_dir=None)["table"].drop(columns=["run_dir"])
    a_new = analyze([new], out_dir=None)["table"].drop(columns=["run_dir"])
    pd.testing.assert_frame_equal(a_old, a_new)
    from takd_search.progress import run_status

    s_old, s_new = run_status(old), run_status(new)
    assert {**s_old, "run_dir": None} == {**s_new, "run_dir": None}

    # --resume: the saved space and the finished phases, under the new names
    assert saved_run.saved(old)["space"] == saved_run.saved(new)["space"]
    assert run_folder.load_done(old) == run_folder.load_done(new)
    # and the same command again finds the old unfinished folder for today's space
    run_folder.set_state(old, "interrupted")
    space = SimpleNamespace(name=new.name.split("-")[0])
    json_new = json.loads((new / "space.json").read_text())
    assert run_folder.pick_run_dir(space, json_new, old.parent, False, None) == old


# ---- an interrupted phase of the in-process runner -----------------------------------
RUN = RunSettings.of({"train": TrainConfig(epochs=4, batch_size=8).as_dict(), "seed": 0})


class Trainer:
    """The score from the hop's whole epochs (so the conversion is exercised); Ctrl-C at
    trial `stop_at`."""

    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def __call__(self, cfg, run, dataset, teacher, *, report, trial_id):
        self.calls.append(cfg["trial_number"])
        if cfg["trial_number"] == self.stop_at:
            raise KeyboardInterrupt
        (p, *_) = hop_params(cfg["hops"], 4)
        score = 0.5 + 0.1 * p.kd_epochs + 0.01 * (p.parent_epoch or 4) + 0.001 * p.T
        report({"score": score, "epoch": 4, "epochs": 4, "finished": True})


def test_an_old_interrupted_phase_resumes_without_rerunning(tmp_path):
    f = _write(tmp_path, "kd_fraction", "parent_fraction")
    space, _, _ = load_space(str(f))
    sizes = {m: models.model_size(m, 10, (1, 28, 28)) for m in ("plain10", "plain8",
             "plain6", "plain4", "plain2")}  # fmt: skip

    def run(root, trainer):
        phase = Phase(name="search", run=RUN, space=PathSpace(space, sizes), n_trials=8,
                      batch=4)  # fmt: skip
        return InProcessRunner(trainer).run_phase(phase, root)

    first = Trainer(stop_at=5)
    with pytest.raises(Interrupted):
        run(tmp_path / "t", first)
    saved = tmp_path / "t" / "search" / "trials.json"
    text = saved.read_text()
    assert '"kd_fraction"' in text
    saved.write_text(text.replace("kd_fraction", "kd_epochs").replace("parent_fraction",
                                                                      "parent_epoch"))  # fmt: skip
    resumed = Trainer()
    rows = run(tmp_path / "t", resumed)
    assert resumed.calls == [5, 6, 7]  # 0-4 replayed from the old names
    fresh = run(tmp_path / "fresh", Trainer())
    assert [r["config"] for r in rows] == [r["config"] for r in fresh]


def test_a_space_pickled_with_the_old_names_unpickles():
    """Tune's snapshot of an interrupted phase holds the searcher's PathSpace."""
    from takd_search.config import Space

    space = Space.model_validate(
        {"models": {"family": "plain", "teacher": 10, "student": 2, "candidates": [6]},
         "distill": {"kd_epochs": [0.5, 1.0]}}
    )  # fmt: skip
    ps = PathSpace(space, {"plain10": 100, "plain6": 10, "plain2": 1})
    ps.params = {
        {"kd_fraction": "kd_epochs", "parent_fraction": "parent_epoch"}.get(k, k): v
        for k, v in ps.params.items()
    }  # as a PathSpace of the old version held them
    again = pickle.loads(pickle.dumps(ps))
    assert set(again.params) == {"T", "alpha", "kd_fraction", "parent_fraction"}
    cfg = again(optuna.trial.FixedTrial({"ta_plain6": True, "T": 2.0, "alpha": 0.5,
                                         "kd_fraction": 0.5}))  # fmt: skip
    assert cfg["hops"][0]["kd_fraction"] == 0.5
