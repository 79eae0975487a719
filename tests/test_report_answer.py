"""The answer block and summary.json of a run (search/summary.py) from confirmation rows
with counts: verdicts worded from the interval, "for this teacher", ties, failures and
the teacher-seed spread. No training, no Ray."""

from __future__ import annotations

import json

import pytest

from takd_search.config import load_space
from takd_search.search.space import PathSpace
from takd_search.search.summary import answer, summarize

SPACE = """
description: summary tests
data: {{dataset: digits}}
models: {{family: plain, teacher: 8, student: 2, candidates: [6, 4], max_tas: 2}}
train: {{epochs: 2, batch_size: 64}}
distill: {{T: [2.0, 8.0], alpha: {{low: 0.2, high: 0.8}}}}
search: {{n_trials: 4, seed: 0}}
resources: {{cpu: 1}}
baselines: {{confirm_top_k: 1, confirm_seeds: [1, 2, 3, 4, 5], select_seeds: [6, 7],
            reseed_teacher: {reseed}}}
"""
A, B, C, D = (
    "plain8>plain6>plain2",
    "plain8>plain4>plain2",
    "plain8>plain6>plain4>plain2",
    "plain8>plain2",
)
N_VAL, N_TEST = 360, 360
SIZES = {"plain8": 8000, "plain6": 3000, "plain4": 2000, "plain2": 1000}


def _space(tmp_path, reseed=False):
    p = tmp_path / "s.yaml"
    p.write_text(SPACE.format(reseed=str(reseed).lower()))
    return load_space(str(p))[0]


def _methods():
    hop = {"T": 4.0, "alpha": 0.5, "kd_fraction": 1.0, "parent_fraction": 1.0}
    m = {
        "top1": {"path": A, "val_acc": 0.9, "tuning_trials": 4, "tuning_seconds": 12.0},
        "top2": {"path": C, "val_acc": 0.9, "tuning_trials": 4, "tuning_seconds": 12.0},
        "heuristic": {"path": B, "val_acc": 0.9, "tuning_trials": 4, "tuning_seconds": 11.0},
        "blkd": {"path": D, "val_acc": 0.9, "tuning_trials": 4, "tuning_seconds": 5.0},
        "nokd": {"path": "plain2", "val_acc": None, "tuning_trials": 0, "tuning_seconds": 0},
    }
    for v in m.values():
        v.update(guidance="chain", hops=[hop] * v["path"].count(">"), lr=None)
    return m


def _row(method, seed, seed_set, val, test, status="completed", teacher=None):
    path = _methods()[method]["path"]
    ok = status == "completed"
    return {
        "method": method, "path": path, "seed": seed, "seed_set": seed_set, "status": status,
        "val_acc": val / N_VAL if ok else None, "test_acc": test / N_TEST if ok else None,
        "val_correct": val if ok else None, "val_total": N_VAL if ok else None,
        "test_correct": test if ok else None, "test_total": N_TEST if ok else None,
        "teacher_val_acc": teacher, "teacher_test_acc": teacher,
    }  # fmt: skip


def _rows(gain, *, select=((330, 331), (320, 321)), fail=None, teacher=None, tops=("top1",)):
    """Report seeds 1..5: BLKD 300..304 images, each of `tops` BLKD + gain[i], heuristic =
    BLKD, NoKD BLKD - 5. Selection seeds 6, 7: top1 and top2 get `select`."""
    rows = []
    for i, s in enumerate((1, 2, 3, 4, 5)):
        b = 300 + i
        t = None if teacher is None else teacher[i]
        rows += [_row(top, s, "report", 330, b + gain[i], teacher=t) for top in tops]
        rows += [
            _row("heuristic", s, "report", 320, b, teacher=t),
            _row("blkd", s, "report", 310, b, teacher=t),
            _row("nokd", s, "report", 300, b - 5),
        ]
    for j, s in enumerate((6, 7)):
        rows += [_row("top1", s, "select", select[0][j], 0),
                 _row("top2", s, "select", select[1][j], 0)]  # fmt: skip
    if fail:
        for r in rows:
            if (r["method"], r["seed"]) == fail:
                r.update(status="failed", val_acc=None, test_acc=None, val_correct=None,
                         test_correct=None)  # fmt: skip
    return rows


def _run(tmp_path, rows, reseed=False):
    space = _space(tmp_path, reseed)
    s = summarize(
        space, tmp_path, _methods(), rows, [], {}, "plain4", PathSpace(space, SIZES),
        "plain8", "plain2", 1.0, select_seeds=[6, 7], n_val=N_VAL,
    )  # fmt: skip
    json.dumps(s)  # summary.json must serialise (no Fractions)
    return s, answer(s)


def test_one_image_on_every_seed_is_no_difference_for_this_teacher(tmp_path):
    s, text = _run(tmp_path, _rows([1, 1, 1, 1, 1]))
    assert s["winner"] == "top1" and s["teacher_fixed"] and s["teacher_spread"] is None
    b = s["best"]
    assert b["diff_vs_blkd"] == pytest.approx(1 / 360) and b["p_vs_blkd"] is None
    assert b["p_note_vs_blkd"] == "undefined (zero variance)"
    line = next(x for x in text.splitlines() if x.startswith("vs BLKD"))
    assert "no difference detected at this budget: BLKD is as good" in line
    assert "test is undefined" in line and line.endswith("for this teacher")
    assert "beats" not in text


def test_a_real_gain_is_claimed_with_its_interval(tmp_path):
    # +6..+10 images (1.7..2.8 pp) on the five seeds
    s, text = _run(tmp_path, _rows([6, 7, 8, 9, 10]))
    line = next(x for x in text.splitlines() if x.startswith("vs BLKD"))
    # diffs 6..10 images of 360: mean 2.22 pp, sd 0.439 pp, t(.975, 4) = 2.776 -> +-0.545
    assert line.startswith("vs BLKD    the path beats BLKD by 2.22 pp [95% CI +1.68, +2.77]")
    assert "5 paired seeds" in line and line.endswith("for this teacher")
    # noise around zero: no signed headline
    s, text = _run(tmp_path, _rows([-6, 4, -1, 5, -3]))
    line = next(x for x in text.splitlines() if x.startswith("vs BLKD"))
    assert "no difference detected at this budget: BLKD is as good (-0.06 pp [95% CI" in line


def test_failed_seeds_are_listed_and_a_failed_selection_seed_loses(tmp_path):
    # top1 is far better on its one surviving selection seed, but failed seed 7
    rows = _rows([1, 2, 3, 1, 2], select=((350, 350), (320, 321)), fail=("top1", 7),
                 tops=("top1", "top2"))  # fmt: skip
    s, text = _run(tmp_path, rows)
    assert s["winner"] == "top2"
    assert s["failed"] == {"top1": {"select": [7], "report": []}}
    assert "failed     top1 seed 7 (selection)" in text
    rows = _rows([1, 2, 3, 1, 2], fail=("blkd", 3))
    s, text = _run(tmp_path, rows)
    assert s["failed"] == {"blkd": {"select": [], "report": [3]}}
    assert s["best"]["seeds"] == 5 and "failed     blkd seed 3" in text


def test_tied_candidates_are_said_and_fewer_tas_break_the_tie(tmp_path):
    # top2 (2 TAs) one image above top1 (1 TA) on the selection seeds' mean (of 360)
    rows = _rows([1, 2, 3, 1, 2], select=((320, 320), (321, 321)), tops=("top1", "top2"))
    s, text = _run(tmp_path, rows)
    assert s["selection"]["tied"] == ["top1", "top2"] and s["winner"] == "top1"
    assert s["selection"]["tie_rule"].startswith("fewer TAs")
    assert "tied       top1, top2: within one validation image" in text
    # three images apart: no tie, the higher score
    rows = _rows([1, 2, 3, 1, 2], select=((320, 320), (323, 323)), tops=("top1", "top2"))
    s, _ = _run(tmp_path, rows)
    assert s["winner"] == "top2" and s["selection"]["tied"] == []


def test_the_drivers_choice_is_the_winner_and_its_rule_is_stated(tmp_path):
    """run.py retrains only the search's chosen candidate with the report seeds: that is
    the winner, even where the tie band would have preferred the one-TA path; both are
    listed as tied and the rule named is the one that chose."""
    rows = _rows([1, 2, 3, 1, 2], select=((320, 320), (321, 321)), tops=("top2",))
    s, text = _run(tmp_path, rows)
    assert s["winner"] == "top2" and s["best"]["path"] == C
    assert s["selection"]["tied"] == ["top1", "top2"]
    assert s["selection"]["tie_rule"].startswith("the higher selection score")


def test_reseeded_teacher_gives_its_spread_and_no_for_this_teacher(tmp_path):
    teachers = [0.95, 0.96, 0.94, 0.97, 0.95]
    s, text = _run(tmp_path, _rows([6, 7, 8, 9, 10], teacher=teachers), reseed=True)
    assert not s["teacher_fixed"]
    t = s["teacher_spread"]["test"]
    assert t["n"] == 5 and t["mean"] == pytest.approx(0.954) and t["min"] == 0.94
    assert "teacher    retrained per seed (5 seeds): test 95.40 %" in text
    assert "for this teacher" not in text


def test_a_matched_control_keeps_tuning_luck_from_reading_as_a_path_effect(tmp_path):
    """The winner beats tuned BLKD by 6..10 images, but BLKD retrained at the winner's own
    hyper-parameters (`blkd_matched`) is as good as the winner: no path effect claimed."""
    rows = _rows([6, 7, 8, 9, 10])
    for i, s in enumerate((1, 2, 3, 4, 5)):
        r = _row("blkd", s, "report", 330, 300 + i + (6, 7, 8, 9, 10)[i] + (-1, 1, 0, 1, -1)[i])
        rows.append(dict(r, method="blkd_matched"))
    s, text = _run(tmp_path, rows)
    b = s["best"]
    assert b["diff_vs_matched"] == pytest.approx(0.0) and b["diff_ci_vs_matched"] is not None
    line = next(x for x in text.splitlines() if x.startswith("vs BLKD"))
    assert "no path effect detected at this budget: the path beats tuned BLKD (+2.22 pp)" in line
    assert "but not BLKD at its own hyper-parameters (+0.00 pp [95% CI" in line
    # the control beaten as well: the claim stands, and says so
    for r in rows:
        if r["method"] == "blkd_matched":
            r["test_correct"] -= 8 + (r["seed"] % 2)
            r["test_acc"] = r["test_correct"] / 360
    s, text = _run(tmp_path, rows)
    line = next(x for x in text.splitlines() if x.startswith("vs BLKD"))
    assert line.startswith("vs BLKD    the path beats BLKD by 2.22 pp")
    assert "also BLKD at the path's own hyper-parameters" in line
