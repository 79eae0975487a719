"""Issue 18 (a newcomer's first hour): the commands and files a new user reaches for.

Real runs where a run is needed (run-path on digits, a few epochs; no Ray), real Optuna
storage for study.db, real subprocesses for the command line's one-line errors.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from takd_search import results
from takd_search.atomic import write_json
from takd_search.cli import main
from takd_search.errors import UserError


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "takd_search.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory):
    """A real run-path folder: plain4 -> plain2 on digits, 2 epochs, student alone too."""
    root = tmp_path_factory.mktemp("chain")
    args = ["run-path", "--dataset", "digits", "--path", "plain4>plain2", "--epochs", "2"]
    assert main([*args, "--results", str(root), "--name", "p"]) == 0
    return root / "p"


# ---- Broken 5: report and export accept a run-path folder -----------------------------------
def test_report_of_a_run_path_folder(chain_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(chain_dir), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    chain = json.loads((chain_dir / "chain.json").read_text())
    student = chain["hops"][-1]
    assert "# run-path plain4>plain2 on digits" in md
    assert f"{100 * student['test_acc']:.2f}% test" in md
    assert md.count("| plain2") == 2 and "| plain4" in md  # student, NoKD, teacher rows
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "plain2" in printed and "wrote" in printed
    from takd_search import __version__
    from takd_search.report.premise import chain_warnings

    assert chain["takd_search"] == __version__
    assert chain["warnings"] == chain_warnings(chain["hops"], chain["student_alone"])
    hops = results.load_chain(chain_dir)
    assert hops["model"].tolist() == ["plain4", "plain2", "plain2"]
    assert hops["hop"].tolist()[-1] == "NoKD"


def test_export_of_a_run_path_folder(chain_dir, tmp_path, digits):
    import torch

    chain = json.loads((chain_dir / "chain.json").read_text())
    assert main(["export", str(chain_dir), "--out", str(tmp_path / "s.pt")]) == 0
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["method"] == "run-path" and meta["path"] == "plain4>plain2"
    model = torch.jit.load(str(tmp_path / "s.pt"))
    with torch.no_grad():
        acc = (model(digits.x_test.float() / 255).argmax(1) == digits.y_test).float().mean()
    assert float(acc) == pytest.approx(chain["hops"][-1]["test_acc"], abs=1e-6)
    assert main(["export", str(chain_dir), "--path", "nokd", "--out", str(tmp_path / "a")]) == 0
    alone = json.loads((tmp_path / "a.json").read_text())
    assert alone["method"] == "nokd"
    assert alone["accuracy"]["test_acc"] == chain["student_alone"]["test_acc"]
    with pytest.raises(UserError, match="a run-path folder holds plain4>plain2"):
        from takd_search.export import export

        export(chain_dir, tmp_path / "x.pt", path="plain6>plain2")


# ---- Missing 1, 6, 7: spaces, --version, --json ------------------------------------------
def test_spaces_lists_every_shipped_space_with_its_description(capsys):
    from takd_search.config import SPACES_DIR

    files = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
    assert main(["spaces", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == files and "digits_vgg" in files
    assert all(r["description"] and "\n" not in r["description"] for r in rows)
    assert main(["spaces"]) == 0
    text = capsys.readouterr().out
    assert all(f in text for f in files) and "offline" in text


def test_a_wrong_space_name_lists_the_real_choices(tmp_path):
    r = cli("run", "--space", "digits_vg", "--results", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "no search space named 'digits_vg'" in r.stderr and "digits_vgg" in r.stderr
    assert not any(tmp_path.iterdir())


def test_version():
    from takd_search import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"takd-search {__version__}"


def test_json_listings(tmp_path, capsys, chain_dir):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    plain2 = next(r for r in rows if r["model"] == "plain2")
    assert plain2["c10"] == 13082  # FACTS.md: TAKD's CIFAR-10 plain2
    assert main(["datasets", "--json"]) == 0
    ds = json.loads(capsys.readouterr().out)
    assert next(r for r in ds if r["name"] == "digits")["available"] is True
    store = chain_dir.parent / ".store"
    assert main(["store", "ls", "--json", "--store", str(store)]) == 0
    entries = json.loads(capsys.readouterr().out)
    chain = json.loads((chain_dir / "chain.json").read_text())
    keys = {h["key"] for h in chain["hops"]} | {chain["student_alone"]["key"]}
    assert {e["key"] for e in entries} == keys
    assert main(["store", "du", "--json", "--store", str(store)]) == 0
    assert json.loads(capsys.readouterr().out)["hops"]["files"] > 0


# ---- Missing 3: status RUN_DIR, the live view, the console log ---------------------------
def _fake_run(d, state="running", pid=None):
    write_json(d / "space.json", {"name": "x"})
    write_json(d / "state.json", {"status": state})
    rows = [
        {"status": "completed", "config": {"path": p}, "metrics": {"val_acc": v}}
        for p, v in (("plain10>plain4>plain2", 0.93), ("plain10>plain2", 0.91))
    ]
    write_json(d / "phases" / "nokd.json", [])
    write_json(d / "phases" / "search.json", rows)
    from takd_search.progress import write_status

    write_status(
        d,
        {"phase": "blkd", "done": 1, "failed": 0, "running": 1, "total": 2, "eta_s": 30,
         "best": {"val_acc": 0.88, "path": "plain10>plain2"},
         "running_trials": [{"label": "plain10>plain2", "epoch": 3, "epochs": 20}]},
    )  # fmt: skip
    if pid is not None:
        st = json.loads((d / "progress.json").read_text())
        write_json(d / "progress.json", {**st, "pid": pid})


def test_status_of_a_local_run(tmp_path, capsys):
    d = tmp_path / "run"
    _fake_run(d)
    assert main(["status", str(d), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["state"] == "running" and s["alive"] is True  # this process wrote it
    assert s["phase"] == "blkd" and s["done"] == 1 and s["total"] == 2
    assert s["phases_done"] == ["nokd", "search"]
    assert s["best"] == {"val_acc": 0.93, "path": "plain10>plain4>plain2", "phase": "search"}
    assert main(["status", str(d)]) == 0
    text = capsys.readouterr().out
    assert "blkd: 1/2 done, 1 running" in text and "epoch 3/20" in text and "93.00%" in text
    # a driver that is gone: the run is reported stopped, with the resume command
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    _fake_run(tmp_path / "dead", pid=int(dead))
    assert main(["status", str(tmp_path / "dead")]) == 0
    assert "state    stopped" in capsys.readouterr().out
    r = cli("status", str(tmp_path / "nope") + os.sep)
    assert r.returncode == 2 and "no such run folder" in r.stderr


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_live_block_redraws_in_place_on_a_terminal_and_prints_events_elsewhere():
    from takd_search.progress import LiveBlock, trial_line

    t = {"hops": 3, "epoch": 4, "epochs": 20, "best": 0.5, "started": 0.0}
    line = trial_line("search", "plain10>plain4>plain2", t, now=12.0)
    assert line == "  [search] plain10>plain4>plain2: hop 3/3 epoch 4/20, best 50.00%, 12 s"
    tty = _Tty()
    view = LiveBlock(tty)
    view.draw([line, "b"])
    view.event("[search] 1/4 done", [line])
    out = tty.getvalue()
    assert out.count("\033[2F\033[J") == 1  # the 2-line block erased once, then redrawn
    assert out.endswith("[search] 1/4 done\n\033[K" + line + "\n")
    plain = io.StringIO()
    view = LiveBlock(plain)
    view.draw([line])
    view.event("[search] 1/4 done", [line])
    assert plain.getvalue() == "[search] 1/4 done\n"


def test_console_log_keeps_lines_printed_before_the_run_folder_is_known(tmp_path):
    from takd_search.progress import attach_log, console_log

    with console_log():
        print("before")
        print("\033[2F\033[Jprogress", file=sys.stderr)
        attach_log(tmp_path / "console.log")
        print("after")
    print("outside")
    assert (tmp_path / "console.log").read_text() == "before\nprogress\nafter\n"
    # on a terminal, the live block is redrawn on the screen only; its events are logged
    from takd_search.progress import LiveBlock, _Tee

    log = console_log()
    log.attach(tmp_path / "tty.log")
    screen = _Tty()
    view = LiveBlock(_Tee(screen, log))
    view.draw(["  [search] a: hop 2/2 epoch 1/4"])
    view.event("[search] 1/2 done", ["  [search] b: hop 2/2 epoch 3/4"])
    log._file.close()
    assert (tmp_path / "tty.log").read_text() == "[search] 1/2 done\n"
    assert "epoch 3/4" in screen.getvalue() and "epoch 1/4" in screen.getvalue()


# ---- Missing 2, 4, 5: --dry-run, study.db, the report at the end of run ------------------
TINY = """
description: a 3-trial digits search for tests
data: {dataset: digits}
models: {family: plain, teacher: 6, student: 2, candidates: [4], max_tas: 1}
train: {epochs: 2, batch_size: 64}
distill: {T: [2.0, 8.0], alpha: {low: 0.2, high: 0.8}, kd_fraction: 1.0, parent_fraction: 1.0}
search: {n_trials: 3, seed: 0, scheduler: none}
resources: {cpu: 1}
baselines: {confirm_top_k: 1, confirm_seeds: [1, 2]}
"""


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)
    res = tmp_path / "results"
    assert main(["run", "--space", str(space), "--results", str(res), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not res.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]
    assert "nothing is trained or written" in out
    assert "nokd     3 trials" in out and "search   3 trials" in out
    # selection: each procedure's top-1 (search, BLKD, heuristic) x 2 selection seeds
    # (3, 4: neither a report seed nor the search's); confirmation: the chosen three, NoKD
    # and the matched BLKD control x 2 report seeds; BLKD and the heuristic get the
    # search's 3 proposals
    assert "select   6 trials" in out and "[3, 4]" in out
    assert "confirm  10 trials" in out
    assert "blkd     3 trials" in out and "tune     3 trials" in out
    assert "2 distinct paths" in out and "ms/step" in out
    assert f"results  {res.resolve()}/tiny-<timestamp>" in out
    assert f"store    {res.resolve()}/.store" in out


def _search_rows(path_space):
    """Three searched trials as Tune's rows: completed, pruned at epoch 1, failed."""
    import optuna

    rows = []
    for i, status in enumerate(("completed", "pruned", "failed")):
        t = optuna.trial.FixedTrial(
            {"ta_plain4": i != 1, "T_plain4": 2.0, "T_plain2": 8.0, "alpha_plain4": 0.3,
             "alpha_plain2": 0.4 + 0.1 * i}
        )  # fmt: skip
        cfg = path_space(t)
        m = {"val_acc": 0.8 + i / 100, "score": 0.7, "epoch": 1, "hop_rows": []}
        if status == "completed":
            m["finished"] = True
        rows.append(
            {
                "trial_id": f"t{i}",
                "status": status,
                "config": cfg,
                "metrics": m if status != "failed" else {},
                "error": "boom" if status == "failed" else None,
            }
        )
    return rows


def test_study_db_mirrors_params_values_and_states(tmp_path):
    import optuna

    from takd_search.config import load_space
    from takd_search.search import study
    from takd_search.search.space import PathSpace

    f = tmp_path / "tiny.yaml"
    f.write_text(TINY.replace("T: [2.0, 8.0]", "T: [2.0, 8.0], per_hop: true"))
    space, _, _ = load_space(str(f))
    ps = PathSpace(space, {"plain6": 3, "plain4": 2, "plain2": 1})
    rows = _search_rows(ps)
    nokd = [{"trial_id": "n", "status": "completed", "config": {"path": "plain2", "seed": 0},
             "metrics": {"val_acc": 0.7, "test_acc": 0.69}}]  # fmt: skip
    db = study.mirror(tmp_path, {"nokd": nokd, "search": rows}, {"search": ps})
    assert db == tmp_path / "study.db"
    url = f"sqlite:///{db}"
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(url)) == ["nokd", "search"]
    s = optuna.load_study(study_name="search", storage=url)
    states = [t.state for t in s.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                      optuna.trial.TrialState.FAIL]  # fmt: skip
    done = s.trials[0]
    assert done.value == pytest.approx(0.8) and s.best_value == pytest.approx(0.8)
    assert done.params == {"ta_plain4": True, "T_plain4": 2.0, "T_plain2": 8.0,
                           "alpha_plain4": 0.3, "alpha_plain2": 0.4}  # fmt: skip
    assert done.user_attrs["path"] == "plain6>plain4>plain2"
    pruned = s.trials[1]
    assert pruned.value is None and pruned.intermediate_values == {1: 0.7}
    assert pruned.params["ta_plain4"] is False and "T_plain4" not in pruned.params
    n = optuna.load_study(study_name="nokd", storage=url).trials[0]
    assert n.params == {"path": "plain2", "seed": 0} and n.user_attrs["test_acc"] == 0.69
    # rebuilt, not appended: mirroring again after the next phase keeps one copy
    study.mirror(tmp_path, {"nokd": nokd, "search": rows}, {"search": ps})
    assert len(optuna.load_study(study_name="search", storage=url).trials) == 3


def test_study_db_mirrors_the_top_up_phase_by_path_and_seed(tmp_path):
    """The equal-budget top-up (`tune`) names its parameters per scheduled path (p0_T),
    which a trial's config cannot answer back: the mirror keeps those trials, by path and
    seed with their hops, instead of failing the whole study.db (as it did)."""
    import optuna

    from takd_search.config import load_space
    from takd_search.search import study
    from takd_search.search.space import PathSpace

    f = tmp_path / "tiny.yaml"
    f.write_text(TINY)
    space, _, _ = load_space(str(f))
    sizes = {"plain6": 3, "plain4": 2, "plain2": 1}
    schedule = ["plain6>plain4>plain2", "plain6>plain2"]  # two paths: p0_T, p1_T
    tune_space = PathSpace(space, sizes, schedule=schedule)
    hops = [{"T": 2.0, "alpha": 0.3}, {"T": 8.0, "alpha": 0.4}]
    rows = [
        {
            "trial_id": f"t{i}",
            "status": "completed",
            "metrics": {"val_acc": 0.8 + i / 100},
            "config": {"path": schedule[i], "hops": hops, "seed": 0},
        }  # fmt: skip
        for i in range(2)
    ]
    db = study.mirror(tmp_path, {"tune": rows, "blkd": []}, {"tune": tune_space, "blkd": None})
    url = f"sqlite:///{db}"
    s = optuna.load_study(study_name="tune", storage=url)
    assert [t.params for t in s.trials] == [{"path": p, "seed": 0} for p in schedule]
    assert [t.value for t in s.trials] == pytest.approx([0.80, 0.81])
    assert json.loads(s.trials[0].user_attrs["hops"]) == hops
    assert optuna.load_study(study_name="blkd", storage=url).trials == []


@pytest.mark.slow
def test_a_real_run_writes_study_db_report_console_log_and_status(tmp_path, capsys):
    import optuna

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)
    res = tmp_path / "results"
    assert main(["run", "--space", str(space), "--results", str(res)]) == 0
    err = capsys.readouterr().err
    (run,) = [d for d in res.iterdir() if d.name.startswith("tiny-")]
    s = optuna.load_study(study_name="search", storage=f"sqlite:///{run / 'study.db'}")
    trials = results.load(run)["trials"]
    search = trials[trials["phase"] == "search"]
    assert len(s.trials) == len(search) == 3
    by_id = {t.user_attrs["tune_trial_id"]: t for t in s.trials}
    for _, row in search.iterrows():
        assert by_id[row["trial_id"]].value == pytest.approx(row["val_acc"])
        assert by_id[row["trial_id"]].user_attrs["path"] == row["path"]
    assert (run / "report.md").exists() and (run / "paths_accuracy.png").exists()
    assert f"report: {run / 'report.md'}" in err
    log = (run / "console.log").read_text()
    assert f"run folder {run}" in log and "[search] 3/3 done" in log and "\033[" not in log
    assert main(["status", str(run), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["state"] == "complete" and st["phases_done"] == ["nokd", "search", "blkd", "confirm"]
    assert st["winner"] == json.loads((run / "summary.json").read_text())["winner"]


# ---- Missing 8: the teacher not better than the student, in the report -------------------
def test_report_warns_when_the_teacher_is_not_better_than_the_student(tmp_path):
    from report_runs import make_run  # the real-schema run folder of the report tests

    from takd_search.report import report

    ok = make_run(tmp_path / "ok")
    assert "warning" not in report(ok)["report"].read_text()
    bad = make_run(tmp_path / "bad")
    base = results.load(bad)["baselines"]
    base.loc[base["model"] == "plain10", "val_acc"] = 0.93  # below plain2's 0.94
    results.write_csv(bad, "baselines", base)
    md = report(bad)["report"].read_text()
    (line,) = [ln for ln in md.splitlines() if "warning" in ln]
    assert line == (
        "> **warning: the teacher plain10 (93.00% val) is not better than the student plain2 "
        "trained alone (94.00% val): distillation has nothing to teach; train the teacher "
        "longer (--epochs) or pick a larger one**"
    )
