"""report.build on run folders generated in the real schema (no training, no Ray): the
whole report.md and its plots, one-line user errors, plus one opt-in end-to-end run
(TAKD_SLOW=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from report_runs import make_run, png_size, write_curves

from takd_search import results
from takd_search.atomic import write_json
from takd_search.cli import main
from takd_search.report.build import report
from takd_search.report.plots import PLOTS


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
        w, h = png_size(d / name)
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
        "import sys; from takd_search.report import report; from takd_search.report.analyze "
        "import "
        f"analyze; report({str(d)!r}); analyze([{str(d)!r}], {str(tmp_path)!r}); "
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


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


def test_learning_curves_missing_in_old_runs_is_a_note(tmp_path):
    d = make_run(tmp_path)
    write_curves(d)
    rows = json.loads((d / "phases" / "confirm.json").read_text())
    for r in rows:
        for h in (r.get("metrics") or {}).get("hop_rows", []):
            h.pop("curve")
    write_json(d / "phases" / "confirm.json", rows)
    out = report(d)
    assert "curves" not in out["plots"] and not (d / PLOTS["curves"]).exists()
    assert "No learning-curve plot" in out["report"].read_text()
