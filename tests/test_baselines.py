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
    hop = {"T": T, "alpha": 0.5, "kd_fraction": 1.0, "parent_fraction": 1.0}
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


# ---- statistics from counts (issue 24) --------------------------------------------------


def _f32(k, n):
    import numpy as np

    return float(np.float32(k / n))


def test_one_image_gain_on_every_seed_is_zero_variance_not_p_1e10():
    """The issue's case: the path gets exactly one more test image right than BLKD on every
    seed (360 test images). As float32 fractions the differences differ by ~1e-8 and a
    t-test on them gives p ~ 1e-10; from counts they are identical: undefined."""
    n = 360
    blkd = [300, 311, 322, 333, 344]
    rows = []
    for s, k in enumerate(blkd, 1):
        rows.append({"method": "blkd", "seed": s, "test_acc": _f32(k, n)})
        rows.append({"method": "top1", "seed": s, "test_acc": _f32(k + 1, n)})
    floats = [r["test_acc"] for r in rows if r["method"] == "top1"]
    raw = [a - b["test_acc"] for a, b in zip(floats, [r for r in rows if r["method"] == "blkd"])]
    assert max(raw) - min(raw) > 1e-9  # what slipped past the old atol=1e-12 guard
    # counts carried (the new confirmation.csv): exact, undefined
    counted = [dict(r, test_correct=round(r["test_acc"] * n), test_total=n) for r in rows]
    s = paired_summary(counted, "blkd")["top1"]
    assert s["diff_vs_blkd"] == pytest.approx(1 / n, abs=1e-15)
    assert s["p_vs_blkd"] is None and s["diff_ci_vs_blkd"] is None
    assert s["p_note_vs_blkd"] == ZERO_VARIANCE and s["diff_n_vs_blkd"] == 5
    # an older folder: no counts, but the total is known -> derived, still exact
    s = paired_summary(rows, "blkd", total=n)["top1"]
    assert s["p_note_vs_blkd"] == ZERO_VARIANCE
    # no counts and no total: floats within FLOAT_TOL are the same count
    assert paired_summary(rows, "blkd")["top1"]["p_note_vs_blkd"] == ZERO_VARIANCE
    # one seed two images better: a real spread, a real test
    counted[-1]["test_correct"] += 1
    s = paired_summary(counted, "blkd")["top1"]
    assert s["p_vs_blkd"] is not None and s["diff_std_vs_blkd"] == pytest.approx(
        (1 / n) * math.sqrt(0.2), rel=1e-9
    )


def test_acc_of_prefers_counts_and_derives_them_from_a_known_total():
    from fractions import Fraction

    from takd_search.baselines import acc_of

    assert acc_of({"val_acc": 0.5, "val_correct": 7, "val_total": 12}, "val_acc") == Fraction(
        7, 12
    )
    assert acc_of({"test_acc": _f32(83, 144)}, "test_acc", total=144) == Fraction(83, 144)
    assert acc_of({"test_acc": 0.25}, "test_acc") == 0.25
    assert acc_of({"test_acc": float("nan")}) is None and acc_of({}) is None


def test_failed_selection_seed_ranks_a_candidate_after_every_stable_one():
    """top1 scores 0.99 on the one selection seed it survived; the heuristic 0.90 on both.
    top1 must not win on its survivor."""
    from takd_search.baselines import failed_seeds, select_winner, selection_scores

    rows = [
        {"method": "top1", "seed": 4, "status": "completed", "val_acc": 0.99},
        {"method": "top1", "seed": 5, "status": "failed", "val_acc": None},
        {"method": "heuristic", "seed": 4, "status": "completed", "val_acc": 0.90},
        {"method": "heuristic", "seed": 5, "status": "completed", "val_acc": 0.90},
    ]
    sc = selection_scores(rows, ["top1", "heuristic"], total=100)
    assert sc["top1"]["failed"] == [5] and float(sc["top1"]["score"]) == pytest.approx(0.99)
    assert select_winner(sc, ["top1", "heuristic"], n_val=100)["winner"] == "heuristic"
    assert failed_seeds(rows) == {"top1": [5]}


def test_candidates_within_one_image_tie_and_fewer_tas_win():
    from takd_search.baselines import select_winner

    paths = {"top1": "a>x>y>b", "top2": "a>x>b", "heuristic": "a>y>b"}
    cands = ["top1", "top2", "heuristic"]

    def sc(v1, v2, vh):  # two selection seeds each, 200 validation images
        return {
            "top1": {"score": v1, "seeds": 2, "failed": []},
            "top2": {"score": v2, "seeds": 2, "failed": []},
            "heuristic": {"score": vh, "seeds": 2, "failed": []},
        }

    # top1 one image (0.5 pp) ahead of top2: in the band -> the 1-TA path wins, said tied
    c = select_winner(sc(0.905, 0.900, 0.850), cands, paths, n_val=200)
    assert c["winner"] == "top2" and c["tied"] == ["top1", "top2"]
    assert c["band"] == pytest.approx(0.005) and c["step"] == pytest.approx(0.0025)
    # 1.75 images ahead: top1 wins, and a one-image change of one seed (0.25 pp on the mean)
    # cannot bring top2 into the band: not tied
    c = select_winner(sc(0.90875, 0.900, 0.850), cands, paths, n_val=200)
    assert c["winner"] == "top1" and c["tied"] == []
    # exactly 1.5 images ahead: one image on one seed puts top2 in the band: tied
    c = select_winner(sc(0.9075, 0.900, 0.850), cands, paths, n_val=200)
    assert c["winner"] == "top1" and c["tied"] == ["top1", "top2"]
    # 1.25 images ahead: top1 wins, but one image on one seed could flip it: said tied
    c = select_winner(sc(0.90625, 0.900, 0.850), cands, paths, n_val=200)
    assert c["winner"] == "top1" and c["tied"] == ["top1", "top2"]
    # two 1-TA paths in the band: the higher score, then the search's rank
    c = select_winner(sc(0.80, 0.900, 0.900), cands, paths, n_val=200)
    assert c["winner"] == "top2" and c["tied"] == ["top2", "heuristic"]


def test_a_one_image_change_never_flips_the_winner_unannounced():
    """Property: for random selection scores at image resolution, changing one validation
    number of one candidate by one image either keeps the winner or the original answer
    listed the new winner among the tied."""
    import random
    from fractions import Fraction

    from takd_search.baselines import select_winner

    rng = random.Random(0)
    n, k = 50, 2
    cands = ["top1", "top2", "top3", "heuristic"]
    paths = {"top1": "a>x>y>b", "top2": "a>x>b", "top3": "a>y>b", "heuristic": "a>z>b"}
    for _ in range(3000):
        counts = {c: [rng.randint(40, 44) for _ in range(k)] for c in cands}

        def scores(cs):
            return {c: {"score": Fraction(sum(v), k * n), "seeds": k, "failed": []}
                    for c, v in cs.items()}  # fmt: skip

        before = select_winner(scores(counts), cands, paths, n_val=n)
        c, s, d = rng.choice(cands), rng.randrange(k), rng.choice((-1, 1))
        moved = {x: list(v) for x, v in counts.items()}
        moved[c][s] += d
        after = select_winner(scores(moved), cands, paths, n_val=n)
        if after["winner"] != before["winner"]:
            assert after["winner"] in before["tied"] and before["winner"] in before["tied"]


def test_verdict_is_worded_from_the_interval():
    from takd_search.baselines import verdict

    none = verdict(-0.0153, [-0.042, 0.0113], 0.4, None, "BLKD", fixed_teacher=True, seeds=3)
    assert none.startswith("no difference detected at this budget: BLKD is as good")
    assert "-1.53 pp [95% CI -4.20, +1.13]" in none and none.endswith("for this teacher")
    win = verdict(0.012, [0.004, 0.020], 0.01, None, "BLKD", seeds=5)
    assert (
        win == "the path beats BLKD by 1.20 pp [95% CI +0.40, +2.00] (Holm p=0.01, 5 paired seeds)"
    )
    # the interval excludes zero but Holm does not reject: no claim
    assert verdict(0.012, [0.001, 0.02], 0.06, None, "BLKD").startswith("no difference")
    lose = verdict(-0.012, [-0.02, -0.004], 0.01, None, "NoKD", subject="BLKD")
    assert lose.startswith("NoKD beats BLKD by 1.20 pp")
    flat = verdict(1 / 360, None, None, ZERO_VARIANCE, "BLKD")
    assert flat.startswith("no difference detected") and "test is undefined" in flat
