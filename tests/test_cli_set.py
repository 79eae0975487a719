"""`--set KEY=VALUE` on `run`, `submit` and `--dry-run` (issue 23): any key of the space
file from the command line, checked like the file; the budget flags stay as aliases; an
unknown flag such as `--lr` names the `--set` that does it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from takd_search.cli import build_parser
from takd_search.cluster import jobs
from takd_search.config.files import SpecError, load_space
from takd_search.config.flags import FlagConflict, set_item, set_overrides, unknown_args_hint

ROOT = Path(__file__).resolve().parent.parent


# ---- the command line, end to end (exit code, stdout and stderr as a user sees them) ------
def test_dry_run_shows_a_set_lr_and_writes_nothing(tmp_path, cli):
    r = cli("run", "--space", "digits_vgg", "--dry-run", "--set", "train.lr=0.01", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "set      --set train.lr=0.01" in r.stdout
    assert "SGD lr 0.01 " in r.stdout  # the plan's recipe line: the lr every hop trains at
    assert "dry run of digits_vgg" in r.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written, not even results/


@pytest.mark.parametrize(
    "args, want",
    [
        (
            ["--set", "train.nope=1"],
            "--set train.nope=1: train has no key 'nope': its keys are recipe, epochs",
        ),
        (["--set", "train.lr=-1"], "--set train.lr=-1: train.lr: -1.0 must be > 0"),
        (["--lr", "0.01"], "unrecognized arguments: --lr 0.01; to set train.lr"),
        (["train.lr=0.01"], "to override train.lr, use --set train.lr=0.01"),
    ],
)
def test_a_bad_override_is_one_line_exit_2(tmp_path, args, want, cli):
    r = cli("run", "--space", "digits_vgg", "--dry-run", *args, cwd=tmp_path)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert want in err[0], err[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    if args[0] == "--set":
        assert "docs/spaces.md" in err[0]
    assert list(tmp_path.iterdir()) == []


# ---- the parts, in process ------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, key, value",
    [
        ("train.lr=0.01", "train.lr", 0.01),
        ("train.lr=1e-4", "train.lr", 1e-4),  # YAML 1.1 text, a number here
        ("distill.T=[2,8]", "distill.T", [2, 8]),
        ("distill.alpha={low: 0.1, high: 0.9}", "distill.alpha", {"low": 0.1, "high": 0.9}),
        ("search.sampler=random", "search.sampler", "random"),
        ("models.candidates=[8, 6]", "models.candidates", [8, 6]),
        ("distill.per_hop=true", "distill.per_hop", True),
    ],
)
def test_set_item_reads_the_value_as_yaml(text, key, value):
    item = set_item(text)
    assert (item.key, item.value, item.text) == (key, value, text)


@pytest.mark.parametrize("text", ["train.lr", "=3", "train..lr=1", "train.lr=", "t.x=[1,"])
def test_set_item_refuses_what_is_not_key_value(text):
    with pytest.raises(argparse.ArgumentTypeError):
        set_item(text)


def test_set_applies_any_key_and_the_budget_flags_stay_aliases():
    a = build_parser().parse_args(
        ["run", "--trials", "5", "--set", "train.lr=0.02", "--set", "distill.T=[2,8]"]
        + ["--set", "models.candidates=[6, 4]", "--set", "models.max_tas=2"]
        + ["--set", "baselines.confirm_seeds=[7]"]
    )
    overrides = set_overrides(a)
    assert overrides["search.n_trials"] == 5 and overrides["train.lr"] == 0.02
    space, _, _ = load_space("digits_vgg", overrides)
    assert space.search.n_trials == 5
    assert space.train.lr == 0.02
    assert space.distill.T == [2.0, 8.0]
    assert space.model_names()[2] == ["plain6", "plain4"]
    assert space.baselines.confirm_seeds == [7]
    # the same key through its flag and a --set: the same value is fine, two are not
    same = build_parser().parse_args(["run", "--trials", "5", "--set", "search.n_trials=5"])
    assert set_overrides(same)["search.n_trials"] == 5
    clash = build_parser().parse_args(["run", "--trials", "5", "--set", "search.n_trials=6"])
    with pytest.raises(FlagConflict, match="--trials and --set search.n_trials=6"):
        set_overrides(clash)


def test_every_problem_an_override_makes_names_it():
    with pytest.raises(SpecError) as e:
        load_space("digits_vgg", {"search.n_trials": 0, "distill.T": [2.0, 2.0]})
    lines = str(e.value).splitlines()
    assert "--trials 0: search.n_trials: 0 must be at least 1 (docs/spaces.md)" in lines
    assert any(line.startswith("--set distill.T=[2.0, 2.0]: distill.T:") for line in lines)
    with pytest.raises(SpecError, match=r"^--set search=3: search is not a key|sections are"):
        load_space("digits_vgg", {"search": 3, "nope.x": 1})


def test_unknown_flags_get_the_set_that_does_it():
    assert unknown_args_hint(["--lr", "0.01"]).endswith("use --set train.lr=0.01")
    assert unknown_args_hint(["--T=3"]) == "; to set distill.T, use --set distill.T=3"
    assert "use --set train.batch_size=VALUE" in unknown_args_hint(["--batch-size"])
    assert unknown_args_hint(["--frobnicate", "1"]) == ""


def test_submit_passes_each_set_to_the_jobs_run():
    a = build_parser().parse_args(
        ["submit", "--storage", "/s", "--trials", "2", "--set", "distill.T=[2, 8]"]
    )
    assert jobs._run_args(a, "search_spaces/x.yaml") == [
        "run", "--space", "search_spaces/x.yaml", "--address", "auto",
        "--trials", "2", "--set", "distill.T=[2, 8]",
    ]  # fmt: skip
    # and the job's own parser reads it back to the same value
    again = build_parser().parse_args(jobs._run_args(a, "x.yaml"))
    assert set_overrides(again)["distill.T"] == [2, 8]


def test_every_key_a_set_can_name_is_documented():
    """docs/spaces.md has a row for every key of the schema (what --set may name)."""
    from takd_search.config.flags import space_keys

    doc = (ROOT / "docs" / "spaces.md").read_text()
    rows = {k: k.split(".")[1] if "." in k else k for k in space_keys()}
    missing = [k for k, leaf in rows.items() if f"| `{leaf}` |" not in doc]
    assert not missing, missing
    assert len(rows) >= 50
