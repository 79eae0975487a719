"""config/flags.py: the one table of `run`/`submit` budget flags, and what is made of it."""

from takd_search.cli import build_parser
from takd_search.cluster import jobs
from takd_search.config.flags import FLAGS, flag_overrides

GIVEN = {
    "--trials": ("4", 4),
    "--time-budget": ("90m", 5400.0),
    "--epochs": ("2", 2),
    "--dataset": ("npz:/d/x.npz", "npz:/d/x.npz"),
    "--data-dir": ("/data", "/data"),
    "--gpus-per-trial": ("0.5", 0.5),
    "--cpus-per-trial": ("2", 2.0),
    "--seeds": ("1,2", [1, 2]),
    "--device": ("cpu", "cpu"),
}


def test_every_flag_of_the_table_parses_and_overrides_its_key():
    assert set(GIVEN) == {f.name for f in FLAGS}
    argv = [x for name, (text, _) in GIVEN.items() for x in (name, text)]
    run = build_parser().parse_args(["run", *argv])
    want = {f.key: GIVEN[f.name][1] for f in FLAGS if f.key}
    assert flag_overrides(run) == want
    assert run.device == "cpu"
    on_submit = [x for n, (text, _) in GIVEN.items() if n != "--seeds" for x in (n, text)]
    sub = build_parser().parse_args(["submit", "--storage", "/s", *on_submit])
    assert flag_overrides(sub) == {**want, "baselines.confirm_seeds": None}  # not a submit flag


def test_the_job_runs_with_the_submit_flags_as_given():
    argv = ["--trials", "4", "--gpus-per-trial", "0.5", "--device", "cpu"]
    sub = build_parser().parse_args(["submit", "--storage", "/s", *argv])
    assert jobs._run_args(sub, "search_spaces/x.yaml") == [
        "run", "--space", "search_spaces/x.yaml", "--address", "auto",
        "--trials", "4", "--gpus-per-trial", "0.5", "--device", "cpu",
    ]  # fmt: skip
    bare = build_parser().parse_args(["submit", "--storage", "/s"])
    assert jobs._run_args(bare, "s.yaml") == ["run", "--space", "s.yaml", "--address", "auto"]
