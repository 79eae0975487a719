import pytest

from takd_search.baselines import (
    confirmation_plan,
    heuristic_ta,
    paired_summary,
    top_configs,
    winner,
)


def test_heuristic_picks_ta_closest_to_teacher_student_mean():
    nokd = {"plain10": 0.90, "plain8": 0.88, "plain6": 0.84, "plain4": 0.79, "plain2": 0.70}
    # mean(teacher, student) = 0.80 -> plain4 (0.79) is 0.01 away, plain6 0.04
    assert heuristic_ta(nokd, "plain10", "plain2", ["plain8", "plain6", "plain4"]) == "plain4"
    nokd["plain6"] = 0.805
    assert heuristic_ta(nokd, "plain10", "plain2", ["plain8", "plain6", "plain4"]) == "plain6"
    assert heuristic_ta(nokd, "plain10", "plain2", []) is None


def _trial(i, acc, path="a>b", T=4.0, status="completed"):
    hop = {"T": T, "alpha": 0.5, "kd_epochs": 1.0, "parent_epoch": 1.0}
    return {
        "trial_id": f"t{i}",
        "status": status,
        "val_acc": acc,
        "path": path,
        "guidance": "chain",
        "hops": [hop],
    }


def test_top_configs_are_distinct_and_completed_only():
    trials = [
        _trial(0, 0.9),
        _trial(1, 0.9),
        _trial(2, 0.95, status="pruned"),
        _trial(3, 0.8, T=2.0),
        _trial(4, float("nan"), T=3.0),
        _trial(5, 0.85, "a>c>b"),
    ]
    top = top_configs(trials, 3)
    assert [t["trial_id"] for t in top] == ["t0", "t5", "t3"]


def test_confirmation_plan_crosses_methods_and_seeds():
    plan = confirmation_plan({"top1": {"path": "x"}, "blkd": {"path": "y"}}, [1, 2])
    assert [(p["method"], p["seed"]) for p in plan] == [
        ("top1", 1),
        ("top1", 2),
        ("blkd", 1),
        ("blkd", 2),
    ]
    assert all("teacher_seed" not in p for p in plan)


def test_confirmation_plan_keeps_the_search_teacher():
    methods = {"top1": {"path": "a>b>c"}, "nokd": {"path": "c"}}
    plan = confirmation_plan(methods, [1, 2], teacher_seed=0)
    assert [(p["method"], p["seed"], p.get("teacher_seed")) for p in plan] == [
        ("top1", 1, 0),
        ("top1", 2, 0),
        ("nokd", 1, None),
        ("nokd", 2, None),
    ]


def test_paired_summary_numbers():
    rows = [
        {"method": "top1", "seed": 1, "test_acc": 0.80, "val_acc": 0.81},
        {"method": "top1", "seed": 2, "test_acc": 0.82, "val_acc": 0.80},
        {"method": "top1", "seed": 3, "test_acc": 0.84, "val_acc": 0.83},
        {"method": "blkd", "seed": 1, "test_acc": 0.79, "val_acc": 0.82},
        {"method": "blkd", "seed": 2, "test_acc": 0.80, "val_acc": 0.82},
        {"method": "blkd", "seed": 3, "test_acc": 0.80, "val_acc": 0.82},
    ]
    s = paired_summary(rows, "blkd")
    assert s["top1"]["mean"] == pytest.approx(0.82)
    assert s["top1"]["std"] == pytest.approx(0.02)
    assert s["top1"]["diff_vs_blkd"] == pytest.approx(0.0233333, abs=1e-6)
    # diffs 0.01, 0.02, 0.04: sd 0.0152753, t = 2.6458, df 2 -> p = 0.1181
    assert s["top1"]["diff_std_vs_blkd"] == pytest.approx(0.0152753, abs=1e-6)
    assert s["top1"]["p_vs_blkd"] == pytest.approx(0.1181, abs=1e-3)
    assert s["blkd"]["p_vs_blkd"] is None
    # the winner is chosen on validation accuracy, not test accuracy
    val = paired_summary(rows, "blkd", metric="val_acc")
    assert winner(val, ["top1", "blkd"]) == "blkd"
    assert winner(s, ["top1", "blkd"]) == "top1"
