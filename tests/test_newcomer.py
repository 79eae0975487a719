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
    from takd_search.spec import SPACES_DIR

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
    results.write_json(d / "space.json", {"name": "x"})
    results.write_json(d / "state.json", {"status": state})
    rows = [
        {"status": "completed", "config": {"path": p}, "metrics": {"val_acc": v}}
        for p, v in (("plain10>plain4>plain2", 0.93), ("plain10>plain2", 0.91))
    ]
    results.write_json(d / "phases" / "nokd.json", [])
    results.write_json(d / "phases" / "search.json", rows)
    from takd_search.progress import write_status

    write_status(
        d,
        {"phase": "blkd", "done": 1, "failed": 0, "running": 1, "total": 2, "eta_s": 30,
         "best": {"val_acc": 0.88, "path": "plain10>plain2"},
         "running_trials": [{"label": "plain10>plain2", "epoch": 3, "epochs": 20}]},
    )  # fmt: skip
    if pid is not None:
        st = json.loads((d / "progress.json").read_text())
        results.write_json(d / "progress.json", {**st, "pid": pid})


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
