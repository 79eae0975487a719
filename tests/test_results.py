"""The run folder's CSV schema: round trip, dtypes, loading several runs, user errors."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pytest

from takd_search import results
from takd_search.atomic import write_json
from takd_search.errors import UserError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "results.md"


def trial_row(i: int, **kw) -> dict:
    hops = [{"T": 1 / 3 + i, "alpha": 0.1 + 0.2, "kd_fraction": 1.0, "parent_fraction": 0.5}] * 2
    return {
        "trial_id": f"t{i:03d}",
        "phase": "search",
        "status": "completed",
        "error": None,
        "path": "plain10>plain4>plain2",
        "n_tas": 1,
        "guidance": "chain",
        "seed": None,
        "val_acc": 0.9 + i / 1000 + 1e-13,
        "test_acc": None,
        "epochs_trained": 20,
        "best_epoch": 17,
        "hops_trained": 2,
        "hops_reused": 1,
        "retries": 0,
        "train_seconds": 12.345678901234567,
        "wall_seconds": 13.0,
        **results.hop_columns(hops),
        **kw,
    }


ROWS = {
    "trials": [
        trial_row(0),
        trial_row(1, status="failed", error='boom, "quoted", x', val_acc=None, n_tas=None),
        trial_row(2, phase="blkd", path="plain10>plain2", n_tas=0, seed=7),
    ],
    "baselines": [
        {
            "kind": "nokd",
            "model": "plain2",
            "path": "plain2",
            "role": "student",
            "params": 3194,
            "val_acc": 0.97,
            "test_acc": 0.98,
            "seconds": 1.5,
        },
        {
            "kind": "blkd",
            "model": "plain2",
            "path": "plain10>plain2",
            "role": "student",
            "params": 3194,
            "val_acc": 0.975,
            "T": 4.0,
            "alpha": 0.5,
            "note": "best",
        },
    ],  # fmt: skip
    "confirmation": [
        {
            "method": "top1",
            "path": "plain10>plain4>plain2",
            "guidance": "chain",
            "seed": s,
            "status": "completed",
            "val_acc": 0.96 + s / 100,
            "test_acc": 0.95 + s / 300,
            "hops": "[]",
            "error": None,
        }
        for s in (1, 2, 3)
    ],  # fmt: skip
}


@pytest.mark.parametrize("kind", list(results.SCHEMAS))
def test_schema_round_trip_keeps_values_and_dtypes(tmp_path, kind):
    df = results.frame(kind, ROWS[kind])
    results.write_csv(tmp_path, kind, df)  # a DataFrame is accepted as well as dicts
    back = results.load(tmp_path)[kind]
    assert list(back.columns) == list(results.SCHEMAS[kind])
    assert {c: str(t) for c, t in back.dtypes.items()} == results.SCHEMAS[kind]
    pd.testing.assert_frame_equal(back, df)  # floats to the last bit, NA where NA


def test_frame_values_and_missing(tmp_path):
    results.write_csv(tmp_path, "trials", ROWS["trials"])
    t = results.load(tmp_path)["trials"]
    assert t.loc[0, "val_acc"] == 0.9 + 1e-13
    assert t.loc[0, "T_1"] == 1 / 3 and t.loc[0, "alpha_2"] == 0.1 + 0.2
    assert pd.isna(t.loc[0, "T_3"]) and pd.isna(t.loc[1, "val_acc"])
    assert pd.isna(t.loc[1, "n_tas"]) and t.loc[2, "seed"] == 7
    assert t.loc[1, "error"] == 'boom, "quoted", x'
    assert json.loads(t.loc[0, "hops"])[1]["parent_fraction"] == 0.5
    assert t["hops_trained"].sum() == 6


def test_missing_files_give_empty_frames_with_schema(tmp_path):
    # a run folder that has started (space.json) but written no CSV yet
    write_json(tmp_path / "space.json", {"name": "x"})
    r = results.load(tmp_path)
    for kind, schema in results.SCHEMAS.items():
        assert len(r[kind]) == 0 and list(r[kind].columns) == list(schema)


def test_load_of_a_missing_or_misspelled_folder_raises_one_clear_error(tmp_path):
    """Issue 18, Broken 4: a misspelled folder used to load as three empty frames."""
    real = tmp_path / "digits_vgg-20260101-120000"
    results.write_csv(real, "trials", ROWS["trials"])
    with pytest.raises(UserError, match=r"no such run folder \(did you mean .*120000\?\)"):
        results.load(tmp_path / "digits_vgg-20260101-12000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a run folder"):
        results.load(tmp_path / "empty")
    with pytest.raises(UserError, match="no such run folder"):
        results.load_many([real, tmp_path / "nope"])
    assert len(results.load(real)["trials"]) == len(ROWS["trials"])


def test_old_csv_without_a_column_and_with_an_extra_one(tmp_path):
    old = results.frame("confirmation", ROWS["confirmation"])
    df = old.drop(columns=["guidance", "val_acc", "seed"])
    df["note"] = ["a", "b", "c"]
    df.to_csv(tmp_path / "confirmation.csv", index=False)
    back = results.load(tmp_path)["confirmation"]
    assert list(back.columns) == [*results.CONFIRMATION, "note"]
    for col in ("guidance", "val_acc", "seed"):
        assert back[col].isna().all() and back[col].dtype == old[col].dtype
    assert back["test_acc"].tolist() == [0.95 + s / 300 for s in (1, 2, 3)]


def test_load_many_stacks_runs_with_a_run_column(tmp_path):
    a, b, c = tmp_path / "x" / "run1", tmp_path / "y" / "run1", tmp_path / "run2"
    for d, n in ((a, 1), (b, 2), (c, 3)):
        results.write_csv(d, "confirmation", ROWS["confirmation"][:n])
    many = results.load_many([a, b / "confirmation.csv", c])  # a file names its folder
    conf = many["confirmation"]
    assert conf.groupby("run").size().to_dict() == {"x/run1": 1, "y/run1": 2, "run2": 3}
    assert str(conf["run"].dtype) == "string" and str(conf["seed"].dtype) == "Int64"
    assert len(many["trials"]) == 0 and "run" in many["trials"]


def test_require_run_names_the_problem(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        results.require_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a run folder"):
        results.require_run(tmp_path / "empty")
    results.write_csv(tmp_path / "r", "trials", [])
    with pytest.raises(UserError, match="has not finished .*--resume"):
        results.require_run(tmp_path / "r")
    assert results.require_run(tmp_path / "r", finished=False) == tmp_path / "r"
    write_json(tmp_path / "r" / "summary.json", {})
    assert results.require_run(tmp_path / "r" / "trials.csv") == tmp_path / "r"


def _documented(section: str) -> set[str]:
    text = DOCS.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in body.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        ticks = re.findall(r"`([^`]+)`", first)
        if "..." in first and len(ticks) == 2:  # `T_1` ... `T_4`
            stem = ticks[0].rsplit("_", 1)[0]
            lo, hi = int(ticks[0].rsplit("_", 1)[1]), int(ticks[1].rsplit("_", 1)[1])
            names |= {f"{stem}_{i}" for i in range(lo, hi + 1)}
        else:
            names |= set(ticks)
    return names


@pytest.mark.parametrize("kind", list(results.SCHEMAS))
def test_every_column_is_documented(kind):
    assert _documented(f"{kind}.csv") == set(results.SCHEMAS[kind])


def test_analysis_columns_are_documented():
    from takd_search.report.analyze import COLUMNS

    assert _documented("takd-search analyze CSV_OR_RUN_DIR...") == set(COLUMNS)


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o027)
    try:
        results.write_csv(tmp_path, "trials", ROWS["trials"])
        write_json(tmp_path / "summary.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("trials.csv", "summary.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
