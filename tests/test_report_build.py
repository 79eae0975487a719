"""report and analyze on run folders generated in the real schema (no training, no Ray),
plus one opt-in end-to-end run (TAKD_SLOW=1)."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from takd_search import results
from takd_search.analyze import analyze
from takd_search.cli import main
from takd_search.report import (
    PLOTS,
    epochs_to_reach,
    mean_curves,
    method_stats,
    open_run,
    param_importances,
    progress_frame,
    report,
    student_curves,
)

SIZES = {"plain10": 2388970, "plain8": 303098, "plain6": 72890, "plain4": 17850, "plain2": 3194}
NOKD = {"plain10": 0.98, "plain8": 0.975, "plain6": 0.96, "plain4": 0.955, "plain2": 0.94}
# method -> (path, val per seed, test per seed); seeds 1, 2, 3
CONFIRM = {
    "top1": ("plain10>plain8>plain4>plain2", [0.97, 0.98, 0.99], [0.95, 0.96, 0.97]),
    "heuristic": ("plain10>plain6>plain2", [0.96, 0.96, 0.96], [0.94, 0.95, 0.96]),
    "blkd": ("plain10>plain2", [0.95, 0.95, 0.95], [0.93, 0.95, 0.94]),
    "nokd": ("plain2", [0.94, 0.94, 0.94], [0.92, 0.92, 0.95]),
}


def _hops(path: str, T: float, alpha: float) -> list[dict]:
    n = len(path.split(">")) - 1
    return [{"T": T, "alpha": alpha, "kd_epochs": 1.0, "parent_epoch": 1.0}] * n


def make_run(
    root: Path,
    name: str = "digits_vgg-1",
    *,
    n_search: int = 12,
    confirm: dict = CONFIRM,
    winner: str = "top1",
    heuristic_ta: str = "plain6",
    seed: int = 0,
) -> Path:
    """A finished run folder in the real schema. Search trials' validation accuracy is
    0.9 + 0.08 * alpha: alpha matters, T and the path do not."""
    d = root / name
    rng = np.random.default_rng(seed)
    paths = ["plain10>plain8>plain4>plain2", "plain10>plain6>plain2", "plain10>plain4>plain2"]
    trials = []
    for i in range(n_search):
        path = paths[i % 3]
        T, alpha = float(np.exp(rng.uniform(0, np.log(20)))), float(rng.uniform(0.1, 0.9))
        status = "pruned" if i == 3 else "failed" if i == 4 else "completed"
        trials.append(
            {
                "trial_id": f"s{i:02d}",
                "phase": "search",
                "status": status,
                "error": "RuntimeError: x" if status == "failed" else None,
                "path": path,
                "n_tas": len(path.split(">")) - 2,
                "guidance": "chain",
                "val_acc": None if status == "failed" else 0.9 + 0.08 * alpha,
                # every trial is charged what it trained, pruned and failed ones up to the
                # epoch they stopped at (cumulative per-epoch reports)
                "epochs_trained": 5 if status == "pruned" else 2 if status == "failed" else 20,
                "hops_trained": 2,
                "hops_reused": 1,
                "train_seconds": 10.0 + i,
                **results.hop_columns(_hops(path, T, alpha)),
            }
        )
    for i, alpha in enumerate((0.3, 0.6)):
        trials.append(
            {
                "trial_id": f"b{i}",
                "phase": "blkd",
                "status": "completed",
                "path": "plain10>plain2",
                "n_tas": 0,
                "guidance": "chain",
                "val_acc": 0.93 + 0.01 * i,
                "hops_trained": 1,
                "hops_reused": 1,
                "train_seconds": 3.0,
                **results.hop_columns(_hops("plain10>plain2", 4.0, alpha)),
            }
        )
    results.write_csv(d, "trials", trials)
    role = {"plain10": "teacher", "plain2": "student"}
    results.write_csv(
        d,
        "baselines",
        [
            {
                "kind": "nokd",
                "model": m,
                "path": m,
                "role": role.get(m, "ta"),
                "params": SIZES[m],
                "val_acc": v,
                "test_acc": v - 0.005,
                "seconds": 1.0,
            }
            for m, v in NOKD.items()
        ],  # fmt: skip
    )
    conf = [
        {"method": m, "path": p, "guidance": "chain", "seed": s, "seed_set": "report",
         "status": "completed", "val_acc": val[k], "test_acc": test[k],
         "hops": json.dumps(_hops(p, 2.0, 0.5))}
        for m, (p, val, test) in confirm.items()
        for k, s in enumerate((1, 2, 3))
    ]  # fmt: skip
    # the selection seeds (4, 5) of the candidates: they chose the winner, never reported
    select = {m: 0.99 if m == winner else 0.90 for m in confirm if m in ("top1", "heuristic")}
    conf += [
        {"method": m, "path": confirm[m][0], "guidance": "chain", "seed": s,
         "seed_set": "select", "status": "completed", "val_acc": v, "test_acc": 0.5,
         "hops": json.dumps(_hops(confirm[m][0], 2.0, 0.5))}
        for m, v in select.items()
        for s in (4, 5)
    ]  # fmt: skip
    results.write_csv(d, "confirmation", conf)
    space = {
        "name": name.split("-")[0],
        "models": {"family": "plain", "teacher": 10, "student": 2, "candidates": [8, 6, 4]},
        "distill": {
            "T": {"low": 1.0, "high": 20.0, "log": True},
            "alpha": {"low": 0.1, "high": 0.9, "log": False},
            "kd_epochs": 1.0,
            "parent_epoch": 1.0,
            "per_hop": False,
        },
        "search": {"guidance": "chain"},
        "resources": {"cpu": 1.0, "gpu": 0.0},
    }
    results.write_json(d / "space.json", space)
    results.write_json(d / "versions.json", {"run": {"dataset": "digits", "store": None}})
    hpath = f"plain10>{heuristic_ta}>plain2"
    tuned = {"top1": (4, 40.0), "heuristic": (4, 44.0), "blkd": (6, 6.0), "nokd": (0, 0.0)}

    def method(m, path):
        n, secs = tuned[m]
        return {"path": path, "guidance": "chain", "hops": _hops(path, 2.0, 0.5),
                "tuning_trials": n, "tuning_seconds": secs}  # fmt: skip

    summary = {
        "space": space["name"],
        "dataset": "digits",
        "run_dir": str(d),
        "teacher": "plain10",
        "student": "plain2",
        "winner": winner,
        "best": method(winner, confirm[winner][0]),
        "heuristic_ta": heuristic_ta,
        "heuristic": method("heuristic", hpath),
        "blkd": method("blkd", "plain10>plain2"),
        "nokd": method("nokd", "plain2"),
        "top": {"top1": method("top1", confirm["top1"][0])},
        "selection": {"on": "mean validation accuracy over selection seeds [4, 5]",
                      "select_seeds": [4, 5], "report_seeds": [1, 2, 3], "scores": select,
                      "n_val": 144, "resolution": 1 / 144, "tied": []},
        "heuristic_found_best": confirm[winner][0] == hpath,
        "nokd_val": NOKD,
        "compute": {"search_trials": n_search, "search_completed": n_search - 2,
                    "search_pruned": 1, "search_failed": 1, "blkd_trials": 2,
                    "hops_trained": 2 * n_search + 2, "hops_reused": n_search + 2,
                    "train_seconds": 1.0, "grid_trials": 200, "paths": 8,
                    "grid_hops": {"plain10": 1, "plain8": 25, "plain4": 75, "plain2": 200},
                    "hop_seconds": {"plain10": 30.0, "plain8": 8.0, "plain2": 1.0},
                    "wall_seconds": 99.0},
    }  # fmt: skip
    results.write_json(d / "summary.json", summary)
    return d


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_method_stats_numbers(tmp_path):
    run = open_run(make_run(tmp_path))
    s = method_stats(run.confirmation).set_index("method")
    assert list(s.index) == ["top1", "heuristic", "blkd", "nokd"]
    top = s.loc["top1"]
    assert top["seeds"] == 3
    assert top["test_mean"] == pytest.approx(0.96) and top["test_std"] == pytest.approx(0.01)
    assert top["val_mean"] == pytest.approx(0.98)
    # paired differences: top1 - blkd = .02, .01, .03; top1 - nokd = .03, .04, .02
    assert top["diff_vs_blkd"] == pytest.approx(0.02)
    assert top["diff_std_vs_blkd"] == pytest.approx(0.01)
    assert top["diff_vs_nokd"] == pytest.approx(0.03)
    t = 0.02 / (0.01 / math.sqrt(3))  # paired t, 2 degrees of freedom: p = 1 - t/sqrt(t^2+2)
    assert top["p_vs_blkd"] == pytest.approx(1 - t / math.sqrt(t * t + 2))
    assert pd.isna(s.loc["blkd", "diff_vs_blkd"]) and pd.isna(s.loc["nokd", "diff_vs_nokd"])


def test_progress_counts_completed_trials_and_free_reuse(tmp_path):
    run = open_run(make_run(tmp_path, n_search=6))
    f = progress_frame(run.trials, "search", per_trial=0.5)
    val = [0.9 + 0.08 * json.loads(h)[0]["alpha"] for h in run.trials["hops"][:6]]
    assert f["trial"].tolist() == [1, 2, 3, 4, 5, 6]
    assert pd.isna(f.loc[3, "val_acc"]) and pd.isna(f.loc[4, "val_acc"])  # pruned, failed
    want = np.maximum.accumulate([val[0], val[1], val[2], -1, -1, val[5]])
    want = [v if v >= 0 else max(val[:3]) for v in want]
    assert f["best_so_far"].tolist() == pytest.approx(want)
    assert f["cost_seconds"].tolist() == pytest.approx(np.cumsum([5, 5.5, 6, 6.5, 7, 7.5]))


def test_importances_rank_the_parameter_that_matters(tmp_path):
    run = open_run(make_run(tmp_path, n_search=14))
    imp, note = param_importances(run)
    assert "12 completed search trials" in note
    assert set(imp.index) == {"T", "alpha", "ta_plain8", "ta_plain6", "ta_plain4"}
    assert imp.index[0] == "alpha" and imp["alpha"] > 0.5
    assert imp.sum() == pytest.approx(1.0)


def test_importances_with_too_few_trials_is_a_note(tmp_path):
    run = open_run(make_run(tmp_path, n_search=4))  # 3 completed, 1 pruned
    imp, note = param_importances(run)
    assert imp is None and "Too few completed search trials (3)" in note


def test_report_writes_markdown_and_plots(tmp_path, capsys):
    d = make_run(tmp_path)
    assert main(["report", str(d)]) == 0
    printed = capsys.readouterr().out
    # top1 - blkd = .02, .01, .03: sd .01, t(.975, 2) = 4.3027 -> CI .02 +- .0248; paired p
    # .0742, vs NoKD .0351: Holm -> .0742 and .0702
    assert "top1 (winner)" in printed and "+2.00 pp [-0.48, +4.48] (Holm p=0.074)" in printed
    md = (d / "report.md").read_text()
    assert "**Selected path: `plain10>plain8>plain4>plain2`**" in md
    assert "tuned on 4 completed trials" in md
    assert "**96.00 ± 1.00 %** (mean ± std over 3 report seeds)" in md
    assert "chosen by mean validation accuracy over selection seeds [4, 5]" in md
    assert "Difference from BLKD (`plain10>plain2`" in md and "on 6 completed trials" in md
    assert "+2.00 pp [-0.48, +4.48] (Holm p=0.074)" in md
    assert "the interval includes zero (Holm p = 0.074)" in md
    # vs NoKD: .03, .04, .02 -> CI [+0.52, +5.48] excludes 0, Holm p .0702: not claimed
    assert "+3.00 pp [+0.52, +5.48] (Holm p=0.07)" in md
    assert "suggestive on these 3 seeds, not shown" in md
    assert "beats" not in md.split("## Confirmed paths")[0]
    # the tuning budget beside each method in the key table
    assert "| tuning trials | tuning s |" in md and "| 6 | 6 |" in md
    # heuristic - top1 = -.01 on every seed: zero variance, no claim that it missed
    assert "picked `plain6`" in md and "did not find" not in md
    assert "-1.00 pp (undefined (zero variance)) against the selected path" in md
    assert "this run does not show that the heuristic missed the best path" in md
    # the grid: 301 distinct hops at this run's per-model hop cost (plain4: the mean)
    assert "would train 301 distinct hops" in md
    assert "about 23.4 CPU-minutes (no measured hop of plain4: the overall mean)" in md
    assert "against 3.2 CPU-minutes here" in md
    assert "tied at the best validation accuracy" not in md  # alpha spreads them
    assert "| alpha |" in md  # importances table
    for key, name in PLOTS.items():
        if key == "curves":  # make_run writes no phases/*.json: a note, no plot
            assert not (d / name).exists() and "No learning-curve plot" in md
            continue
        assert f"]({name})" in md
        w, h = _png_size(d / name)
        assert w >= 600 and h >= 300


def test_report_with_too_few_trials_still_works(tmp_path):
    d = make_run(tmp_path, n_search=3)
    out = report(d, tmp_path / "elsewhere")
    assert out["report"] == tmp_path / "elsewhere" / "report.md"
    assert "Too few completed search trials" in out["report"].read_text()
    assert all(p.exists() for p in out["plots"].values())
    assert not (d / "report.md").exists()


def test_report_and_analyze_need_neither_ray_nor_torch(tmp_path):
    d = make_run(tmp_path)
    code = (
        "import sys; from takd_search.report import report; from takd_search.analyze import "
        f"analyze; report({str(d)!r}); analyze([{str(d)!r}], {str(tmp_path)!r}); "
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_analyze_two_runs(tmp_path, capsys):
    a = make_run(tmp_path / "results", "digits_vgg-1")
    other = dict(CONFIRM, heuristic=("plain10>plain6>plain2", [0.99] * 3, [0.97, 0.98, 0.99]))
    b = make_run(tmp_path / "results", "cifar_vgg-2", confirm=other, winner="heuristic")
    (tmp_path / "results" / "unfinished").mkdir()
    (tmp_path / "results" / "unfinished" / "space.json").write_text("{}")
    out = tmp_path / "out"
    assert main(["analyze", str(a), str(b / "trials.csv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "digits_vgg-1" in printed and "cifar_vgg-2" in printed
    df = pd.read_csv(out / "analysis.csv").set_index("run")
    assert list(df.index) == ["digits_vgg-1", "cifar_vgg-2"]
    assert df.loc["digits_vgg-1", "best_path"] == "plain10>plain8>plain4>plain2"
    assert df.loc["digits_vgg-1", "gain_vs_blkd"] == pytest.approx(0.02)
    assert df.loc["digits_vgg-1", "gain_vs_nokd"] == pytest.approx(0.03)
    assert not df.loc["digits_vgg-1", "heuristic_found_best"]
    assert df.loc["cifar_vgg-2", "best_path"] == "plain10>plain6>plain2"
    assert df.loc["cifar_vgg-2", "best_test_mean"] == pytest.approx(0.98)
    assert df.loc["cifar_vgg-2", "gain_vs_blkd"] == pytest.approx(0.04)  # .04, .03, .05
    assert df.loc["cifar_vgg-2", "heuristic_found_best"]
    assert df.loc["cifar_vgg-2", "blkd_test_mean"] == pytest.approx(0.94)
    assert df["train_hours"].tolist() == pytest.approx([(sum(range(10, 22)) + 6) / 3600] * 2)
    md = (out / "analysis.md").read_text()
    assert (
        "| cifar_vgg-2 | digits | plain10 -> plain2 | plain10>plain6>plain2 | 98.00 ± 1.00 |" in md
    )
    # a folder of runs: finished ones are taken, the unfinished one is skipped with a note
    r = analyze([tmp_path / "results"], None)
    assert sorted(r["table"]["run"]) == ["cifar_vgg-2", "digits_vgg-1"]
    assert "skipped 1 unfinished run" in capsys.readouterr().err
    # an earlier analysis.csv plus a run already in it: each run once
    r = analyze([out / "analysis.csv", a], None)
    assert sorted(r["table"]["run"]) == ["cifar_vgg-2", "digits_vgg-1"]


@pytest.mark.parametrize(
    "args, msg",
    [
        (["report", "{tmp}/nope"], "no such run folder"),
        (["report", "{tmp}/unfinished"], "has not finished (no summary.json)"),
        (["analyze", "{tmp}/unfinished"], "has not finished"),
        (["analyze", "{tmp}/other.csv"], "not a run's CSV"),
        (["export", "{tmp}/unfinished"], "has not finished"),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, args, msg):
    (tmp_path / "unfinished").mkdir()
    results.write_csv(tmp_path / "unfinished", "trials", [])
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0], err


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("TAKD_SLOW"), reason="a real search (about 1 min); set TAKD_SLOW=1"
)
def test_real_run_report_and_export(tmp_path):
    import torch

    from takd_search.data import load_dataset

    cmd = [sys.executable, "-m", "takd_search.cli"]
    r = subprocess.run(
        [*cmd, "run", "--space", "digits_vgg", "--trials", "4", "--epochs", "2",
         "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    (d,) = [p for p in tmp_path.iterdir() if p.name.startswith("digits_vgg-")]
    r = subprocess.run([*cmd, "report", str(d)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert all((d / p).exists() for p in [*PLOTS.values(), "report.md"])
    out = tmp_path / "student.pt"
    r = subprocess.run(
        [*cmd, "export", str(d), "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    conf = results.load(d)["confirmation"]
    row = conf[(conf["method"] == side["method"]) & (conf["seed"] == side["accuracy"]["seed"])]
    ds = load_dataset("digits")
    model = torch.jit.load(str(out))
    with torch.no_grad():
        acc = (model(ds.x_test.float() / 255).argmax(1) == ds.y_test).float().mean().item()
    assert abs(acc - float(row["test_acc"].iloc[0])) <= 1e-6


def test_per_hop_spaces_use_the_hop_into_each_model(tmp_path):
    d = make_run(tmp_path, n_search=12)
    space = json.loads((d / "space.json").read_text())
    space["distill"]["per_hop"] = True
    results.write_json(d / "space.json", space)
    t = results.load(d)["trials"]
    # per hop: the hop into the student gets alpha 0.1..0.9 spread, earlier hops 0.5
    hops = []
    for h in map(json.loads, t["hops"]):
        hops.append(json.dumps([dict(x, alpha=0.5) for x in h[:-1]] + h[-1:]))
    t["hops"] = hops
    results.write_csv(d, "trials", t)
    imp, _ = param_importances(open_run(d))
    # present in every trial: the TA flags and the hop into plain2; T_plain6 etc. are not
    assert {"alpha_plain2", "T_plain2"} <= set(imp.index)
    assert not {"T_plain6", "alpha_plain4", "alpha_plain6"} & set(imp.index)
    assert imp.index[0] == "alpha_plain2"
    out = report(d)
    assert all(p.exists() for p in out["plots"].values())


def test_searched_learning_rate_is_analysed(tmp_path):
    d = make_run(tmp_path, n_search=12)
    space = json.loads((d / "space.json").read_text())
    space["train"] = {"lr": {"low": 0.01, "high": 0.1, "log": True}}
    results.write_json(d / "space.json", space)
    t = results.load(d)["trials"]
    t["lr"] = [0.01 * (1 + i % 9) for i in range(len(t))]
    # now the learning rate decides the accuracy, alpha does not
    t["val_acc"] = t["val_acc"].where(t["val_acc"].isna(), 0.8 + t["lr"])
    results.write_csv(d, "trials", t)
    imp, _ = param_importances(open_run(d))
    assert "lr" in imp.index and imp.index[0] == "lr"
    assert all(p.exists() for p in report(d)["plots"].values())


# student val_acc per epoch (1..5) per seed (1, 2): NoKD's mean peaks at 91 % in epoch 5,
# top1's mean [71, 89, 91, 94, 95] reaches 91 % in epoch 3 (exactly: a tolerance test)
CURVES = {
    "top1": [[0.70, 0.88, 0.92, 0.93, 0.94], [0.72, 0.90, 0.90, 0.95, 0.96]],
    "heuristic": [[0.60, 0.80, 0.85, 0.90, 0.92], [0.62, 0.80, 0.87, 0.90, 0.92]],
    "blkd": [[0.55, 0.75, 0.85, 0.90, 0.93], [0.57, 0.77, 0.85, 0.90, 0.93]],
    "nokd": [[0.50, 0.70, 0.80, 0.88, 0.90], [0.52, 0.72, 0.82, 0.90, 0.92]],
}


def _curve(vals: list[float]) -> list[dict]:
    return [
        {"epoch": e, "train_loss": 1.0 / e, "train_acc": v, "val_acc": v, "lr": 0.1,
         "kd": True, "seconds": float(e)}
        for e, v in enumerate(vals, 1)
    ]  # fmt: skip


def _phase_row(tid: str, config: dict, path: str, vals: list[float], alpha=0.5) -> dict:
    names = path.split(">")
    hops = [{"hop": i + 1, "model": m, "T": 2.0, "alpha": alpha, "curve": []}
            for i, m in enumerate(names)]  # fmt: skip
    hops[-1]["curve"] = _curve(vals)
    return {"trial_id": tid, "status": "completed", "error": None,
            "config": {**config, "path": path}, "metrics": {"hop_rows": hops}}  # fmt: skip


def write_curves(d: Path, curves: dict = CURVES) -> None:
    conf = [
        _phase_row(f"c{m}{s}", {"method": m, "seed": s}, CONFIRM[m][0], vals)
        for m, per_seed in curves.items()
        for s, vals in zip((1, 2), per_seed)
    ]
    conf.append({"trial_id": "cx", "status": "failed", "config": {"method": "top1"}})
    results.write_json(d / "phases" / "confirm.json", conf)
    search = [
        _phase_row(f"s{i}", {"T": 2.0, "alpha": a}, "plain10>plain4>plain2",
                   [0.5 + 0.4 * a, 0.7 + 0.2 * a, 0.9, 0.92, 0.93], alpha=a)
        for i, a in enumerate((0.1, 0.5, 0.9))
    ]  # fmt: skip
    results.write_json(d / "phases" / "search.json", search)
    nokd = [_phase_row("n0", {"method": "nokd", "seed": 0}, "plain2", CURVES["nokd"][0])]
    results.write_json(d / "phases" / "nokd.json", nokd)


def test_learning_curves_plot_and_epochs_to_reach(tmp_path):
    d = make_run(tmp_path)
    write_curves(d)
    run = open_run(d)
    c = student_curves(run, "confirm")
    assert len(c) == 4 * 2 * 5  # the failed row has no curve
    mean = mean_curves(c)
    top = mean[mean["method"] == "top1"].sort_values("epoch")
    assert top["mean"].tolist() == pytest.approx([0.71, 0.89, 0.91, 0.94, 0.95])
    assert top["std"].iloc[0] == pytest.approx(math.sqrt(2) * 0.01)
    assert epochs_to_reach(mean, "top1", 0.91) == 3
    assert epochs_to_reach(mean, "nokd", 0.91) == 5
    assert epochs_to_reach(mean, "heuristic", 0.95) is None
    out = report(d)
    w, h = _png_size(out["plots"]["curves"])
    assert out["plots"]["curves"] == d / PLOTS["curves"] and w >= 900 and h >= 400
    md = out["report"].read_text()
    assert "![learning curves](learning_curves.png)" in md
    assert "NoKD's best mean validation accuracy (91.00 %)" in md
    assert "NoKD needs **5**, the winner `top1` **3** (2 epochs fewer)." in md
    # per seed: NoKD 6 (never: one past its 5 epochs) and 5, top1 3 and 4 -> gaps 3, 1;
    # t(.975, 1) = 12.71: the interval includes zero, so no "learns faster" claim
    assert "Per seed, NoKD needs +2 epochs more (95 % CI -11 to +15, 2 seeds)" in md
    assert "no evidence that KD changes how fast the student learns" in md
    assert "KD makes the student learn faster" not in md
    # a winner that never gets there, and curves only in the confirmation (one panel)
    slow = dict(CURVES, top1=[[0.5, 0.6, 0.7, 0.8, 0.85], [0.5, 0.6, 0.7, 0.8, 0.87]])
    write_curves(d, slow)
    (d / "phases" / "search.json").unlink()
    md = report(d)["report"].read_text()
    assert "the winner `top1` **never reaches it** in its 5 epochs (best mean 86.00 %)" in md
    assert (d / PLOTS["curves"]).exists()


def test_learning_curves_missing_in_old_runs_is_a_note(tmp_path):
    d = make_run(tmp_path)
    write_curves(d)
    rows = json.loads((d / "phases" / "confirm.json").read_text())
    for r in rows:
        for h in (r.get("metrics") or {}).get("hop_rows", []):
            h.pop("curve")
    results.write_json(d / "phases" / "confirm.json", rows)
    out = report(d)
    assert "curves" not in out["plots"] and not (d / PLOTS["curves"]).exists()
    assert "No learning-curve plot" in out["report"].read_text()


def test_teacher_note_says_whether_confirmation_kept_the_teacher():
    from takd_search.report import teacher_note
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
    from takd_search.report import speed_sentence

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
