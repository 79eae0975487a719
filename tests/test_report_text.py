"""report.text: the report's sentences (the teacher note, "KD learns faster", ties among
the best search trials)."""

from __future__ import annotations

import pandas as pd
from report_runs import make_run

from takd_search import results
from takd_search.report.build import report
from takd_search.report.stats import mean_curves


def test_teacher_note_says_whether_confirmation_kept_the_teacher():
    from takd_search.report.text import teacher_note
    from takd_search.results import frame

    kept = frame(
        "confirmation",
        [
            {"method": "top1", "seed": 1, "teacher_seed": 0},
            {"method": "nokd", "seed": 1, "teacher_seed": None},
        ],
    )
    assert "search's teacher, seed 0" in teacher_note(kept)
    reseeded = frame("confirmation", [{"method": "top1", "seed": 1, "teacher_seed": None}])
    assert "teacher included" in teacher_note(reseeded)


def test_learns_faster_is_said_only_when_every_seed_supports_it():
    from takd_search.report.text import speed_sentence

    def frame(per_method):
        return pd.DataFrame(
            [
                {"trial": f"{m}{s}", "method": m, "seed": s, "epoch": e, "val_acc": v}
                for m, seeds in per_method.items()
                for s, vals in enumerate(seeds, 1)
                for e, v in enumerate(vals, 1)
            ]
        )

    # NoKD reaches its best mean (0.90) at epoch 5 on every seed, top1 at epoch 2, 2, 3
    fast = frame(
        {
            "nokd": [[0.5, 0.6, 0.7, 0.8, 0.9]] * 3,
            "top1": [
                [0.8, 0.9, 0.9, 0.9, 0.9],
                [0.8, 0.91, 0.9, 0.9, 0.9],
                [0.8, 0.85, 0.9, 0.9, 0.9],
            ],
        }
    )
    text = speed_sentence(mean_curves(fast), "top1", fast)
    assert "KD makes the student learn faster here." in text  # gaps 3, 3, 2: CI > 0
    # the same mean gap on one seed only: no claim
    one = fast[fast["seed"] == 1]
    text = speed_sentence(mean_curves(one), "top1", one)
    assert "Too few paired seeds" in text and "learn faster" not in text


def test_report_says_when_the_top_search_trials_are_tied(tmp_path):
    d = make_run(tmp_path)
    t = results.load(d)["trials"]
    best = t["val_acc"].max()
    t.loc[[0, 1], "val_acc"] = best - 0.5 / 144  # within one of 144 validation images
    results.write_csv(d, "trials", t)
    md = report(d)["report"].read_text()
    assert "3 completed trials are tied at the best validation accuracy" in md
