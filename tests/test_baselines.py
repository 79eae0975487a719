import math

import pytest

from takd_search.baselines import (
    ZERO_VARIANCE,
    confirmation_plan,
    default_select_seeds,
    heuristic_ta,
    holm,
    paired_summary,
    paired_test,
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


def test_heuristic_ties_at_the_validation_resolution_go_to_the_smaller_ta():
    """144 validation images, accuracies as the engine gives them (float32): teacher
    100/144, student 66/144, mean 83/144. plain6 at 84/144 and plain4 at 82/144 are both
    one image away; float rounding makes plain6 look nearer. The rule: the smaller TA."""
    import numpy as np

    n = 144

    def acc(k):
        return float(np.float32(k / n))

    nokd = {"plain10": acc(100), "plain2": acc(66), "plain6": acc(84), "plain4": acc(82)}
    sizes = {"plain6": 72890, "plain4": 17850}
    target = (nokd["plain10"] + nokd["plain2"]) / 2
    assert abs(nokd["plain6"] - target) < abs(nokd["plain4"] - target)  # rounding's pick
    for order in (["plain6", "plain4"], ["plain4", "plain6"]):
        assert heuristic_ta(nokd, "plain10", "plain2", order, sizes, n) == "plain4"
    # one image nearer is not a tie
    nokd["plain6"] = acc(83)
    assert heuristic_ta(nokd, "plain10", "plain2", ["plain6", "plain4"], sizes, n) == "plain6"


def _trial(i, acc, path="a>b", T=4.0, status="completed"):
    hop = {"T": T, "alpha": 0.5, "kd_epochs": 1.0, "parent_epoch": 1.0}
    return {
        "trial_id": f"t{i}",
        "trial_number": i,
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


def test_ties_go_to_the_earlier_proposed_trial_not_the_trial_id():
    """Ray's trial ids are random hex: a tie must not depend on them."""
    a = dict(_trial(3, 0.9, T=2.0), trial_id="ffff")  # proposed 4th
    b = dict(_trial(7, 0.9, T=3.0), trial_id="0000")  # proposed 8th, smaller id
    c = dict(_trial(1, 0.9, "a>x>b", T=5.0), trial_id="9999")  # proposed 2nd, longer path
    for rows in ([a, b, c], [c, b, a], [b, a, c]):
        assert [t["trial_number"] for t in top_configs(rows, 3)] == [1, 3, 7]
    # equal float values from different sums of the same count compare equal
    d = dict(_trial(9, 0.1 + 0.2), trial_id="aaaa")
    e = dict(_trial(8, 0.3, T=9.0), trial_id="bbbb")
    assert [t["trial_number"] for t in top_configs([d, e], 2)] == [8, 9]


def test_winner_ties_go_to_the_shorter_path_then_rank():
    val = {"top1": {"mean": 0.95}, "top2": {"mean": 0.95}, "heuristic": {"mean": 0.95}}
    paths = {"top1": "a>x>y>b", "top2": "a>x>b", "heuristic": "a>y>b"}
    assert winner(val, ["top1", "top2", "heuristic"], paths) == "top2"
    assert winner(val, ["top1", "top2", "heuristic"]) == "top1"
    val["heuristic"]["mean"] = 0.96
    assert winner(val, ["top1", "top2", "heuristic"], paths) == "heuristic"


def test_zero_variance_is_undefined_never_p_zero():
    rows = [
        {"method": m, "seed": s, "test_acc": acc + (0.02 if m == "top1" else 0)}
        for s, acc in ((1, 0.80), (2, 0.85), (3, 0.90))
        for m in ("top1", "blkd")
    ]
    s = paired_summary(rows, "blkd")["top1"]
    assert s["diff_vs_blkd"] == pytest.approx(0.02)
    assert s["p_vs_blkd"] is None and s["diff_ci_vs_blkd"] is None
    assert s["p_note_vs_blkd"] == ZERO_VARIANCE
    assert paired_test([0.0, 0.0])["p"] is None  # identical methods: no p = 1 either
    assert paired_test([0.01])["note"] == "too few paired seeds for a test"


def test_t_interval_and_holm():
    # diffs .01, .02, .04: mean .02333, sd .0152753, t(0.975, 2) = 4.302653
    t = paired_test([0.01, 0.02, 0.04])
    half = 4.302653 * 0.0152753 / math.sqrt(3)
    assert t["ci"] == pytest.approx([0.0233333 - half, 0.0233333 + half], abs=1e-6)
    assert t["ci"][0] < 0 < t["ci"][1] and t["p"] == pytest.approx(0.1181, abs=1e-3)
    # Holm over two: the smaller p doubled, the larger max(itself, that)
    assert holm({"blkd": 0.04, "nokd": 0.01}) == pytest.approx({"blkd": 0.04, "nokd": 0.02})
    assert holm({"blkd": 0.03, "nokd": 0.02}) == pytest.approx({"blkd": 0.04, "nokd": 0.04})
    assert holm({"blkd": 0.7, "nokd": None}) == {"blkd": 0.7, "nokd": None}
    assert holm({"blkd": 0.6, "nokd": 0.8}) == pytest.approx({"blkd": 1.0, "nokd": 1.0})


def test_selection_seeds_are_disjoint_and_only_for_candidates():
    assert default_select_seeds([1, 2, 3], 0) == [4, 5]
    assert default_select_seeds([1, 3], 2) == [4, 5]
    methods = {"top1": {"path": "a>b>c"}, "blkd": {"path": "a>c"}, "nokd": {"path": "c"}}
    plan = confirmation_plan(methods, [1, 2], 0, select_seeds=[4], candidates=["top1"])
    assert [(p["method"], p["seed"], p["seed_set"]) for p in plan] == [
        ("top1", 4, "select"),
        ("top1", 1, "report"),
        ("top1", 2, "report"),
        ("blkd", 1, "report"),
        ("blkd", 2, "report"),
        ("nokd", 1, "report"),
        ("nokd", 2, "report"),
    ]
