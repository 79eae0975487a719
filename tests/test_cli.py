import json
import subprocess
import sys

import pytest

from takd_search.cli import main


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "takd_search.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_run_path_end_to_end(tmp_path, capsys):
    code = main(
        [
            "run-path",
            "--dataset",
            "digits",
            "--family",
            "plain",
            "--path",
            "10-4-2",
            "--epochs",
            "4",
            "--results",
            str(tmp_path),
            "--name",
            "r",
        ]
    )
    assert code == 0
    out = json.loads((tmp_path / "r" / "chain.json").read_text())
    assert [h["model"] for h in out["hops"]] == ["plain10", "plain4", "plain2"]
    assert out["student_alone"]["model"] == "plain2"
    assert all(0.2 < h["val_acc"] <= 1 for h in out["hops"])
    assert out["store"]["trained"] == 4 and out["store"]["reused"] == 0
    printed = capsys.readouterr().out
    assert "plain10" in printed and "NoKD" in printed
    # the same command again reuses every hop
    assert (
        main(
            [
                "run-path",
                "--dataset",
                "digits",
                "--family",
                "plain",
                "--path",
                "10-4-2",
                "--epochs",
                "4",
                "--results",
                str(tmp_path),
                "--name",
                "r2",
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "r2" / "chain.json").read_text())
    assert [h["status"] for h in again["hops"]] == ["reused"] * 3


@pytest.mark.parametrize(
    "args,msg",
    [
        (["run-path", "--path", "10-3-2", "--family", "plain"], "plain depths are"),
        (["run-path", "--path", "4-10", "--family", "plain"], "strictly decrease"),
        (["run-path", "--path", "10-2", "--family", "plain", "--T", "0"], "--T 0.0 must be > 0"),
        (["run-path", "--path", "10-2", "--family", "plain", "--alpha", "2"], "--alpha"),
        (
            ["run-path", "--path", "10-2", "--family", "plain", "--kd-fraction", "1.5"],
            "--kd-fraction 1.5: must be a fraction of --epochs in (0, 1]",
        ),
        (  # issue 18: the unit of space files; whole epochs (the old unit) are refused
            ["run-path", "--path", "10-2", "--family", "plain", "--kd-fraction", "5"],
            "--kd-fraction 5: is a fraction of --epochs in (0, 1] now",
        ),
        (
            ["run-path", "--path", "10-2", "--family", "plain", "--dataset", "mnist"],
            "unknown data set",
        ),
        (["run-path", "--path", "10-2", "--epochs", "x"], "invalid int value"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path, args, msg, cli):
    r = cli(*args, "--results", tmp_path / "res") if args[0] == "run-path" else cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


def test_models_and_datasets_list(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "plain10" in out and "2,487,850" in out and "resnet110" in out
    assert main(["datasets"]) == 0
    assert "digits" in capsys.readouterr().out
