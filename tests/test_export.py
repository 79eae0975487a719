"""export: a student trained for real (no Ray: chains run in-process into a real hop store,
written into a run folder in the real schema) comes back through TorchScript with the
test accuracy the run recorded."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import takd_search
from takd_search import results
from takd_search.atomic import write_json
from takd_search.cli import main
from takd_search.errors import UserError
from takd_search.export import export, pick

SEEDS = (1, 2)


def _row(method, path, seed, chain, hop):
    from takd_search.engine.chain import hop_rows

    rows = hop_rows(chain)
    student = chain[-1].result
    hops = [hop] * (len(chain) - 1)
    return {
        "trial_id": f"{method}{seed}",
        "status": "completed",
        "error": None,
        "config": {"method": method, "path": path, "guidance": "chain", "seed": seed,
                   "hops": hops},
        "metrics": {"val_acc": student.val_acc, "test_acc": student.test_acc,
                    "hop_rows": rows, "finished": True},
        "retries": 0,
    }  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits):
    from takd_search.engine.augment import DeviceData
    from takd_search.engine.chain import Context, run_chain
    from takd_search.engine.hop import HopParams, TrainConfig
    from takd_search.engine.store import Store

    root = tmp_path_factory.mktemp("export")
    store = Store(root / "store")
    data = DeviceData(digits, "cpu", val_fraction=0.1, split_seed=0)
    ctx = Context(data, TrainConfig(epochs=3, batch_size=128), store)
    hop = {"T": 4.0, "alpha": 0.5, "kd_fraction": 1.0, "parent_fraction": 1.0}
    kd = HopParams(T=4.0, alpha=0.5)
    confirm = []
    for s in SEEDS:
        chain = run_chain(ctx, ["plain4", "plain2"], kd, seed=s)
        confirm.append(_row("top1", "plain4>plain2", s, chain, hop))
        confirm.append(_row("nokd", "plain2", s, run_chain(ctx, ["plain2"], seed=s), hop))
    search = [_row(None, "plain6>plain2", 0, run_chain(ctx, ["plain6", "plain2"], kd), hop)]
    for r in search:
        del r["config"]["method"], r["config"]["seed"]  # search trials carry neither
    d = root / "run"
    write_json(d / "phases" / "confirm.json", confirm)
    write_json(d / "phases" / "search.json", search)
    results.write_csv(
        d,
        "confirmation",
        [
            {"method": r["config"]["method"], "path": r["config"]["path"], "guidance": "chain",
             "seed": r["config"]["seed"], "status": "completed",
             "val_acc": r["metrics"]["val_acc"], "test_acc": r["metrics"]["test_acc"],
             "hops": json.dumps(r["config"]["hops"])}
            for r in confirm
        ],
    )  # fmt: skip
    write_json(d / "space.json", {"models": {"family": "plain"}})
    write_json(
        d / "versions.json",
        {"run": {"dataset": "digits", "data_dir": None, "image_size": None,
                 "store": str(store.root), "seed": 0}},
    )  # fmt: skip
    write_json(d / "summary.json", {"winner": "top1", "teacher": "plain4", "student": "plain2"})
    return d


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_exported_student_reproduces_its_test_accuracy(run_dir, tmp_path, digits):
    out, side = export(run_dir, tmp_path / "student.pt")
    assert (out, side) == (tmp_path / "student.pt", tmp_path / "student.json")
    meta = json.loads(side.read_text())
    conf = results.load(run_dir)["confirmation"]
    top = conf[conf["method"] == "top1"]
    best = top.sort_values(["val_acc", "seed"], ascending=[False, True]).iloc[0]
    assert meta["method"] == "top1" and meta["accuracy"]["seed"] == best["seed"]
    model = torch.jit.load(str(out))  # plain torch: no takd_search needed
    acc = _accuracy(model, digits.x_test.float() / 255.0, digits.y_test)
    assert abs(acc - float(best["test_acc"])) <= 1e-6
    assert abs(acc - meta["accuracy"]["test_acc"]) <= 1e-6
    # uint8 [0, 255] input is the same network on the same pixels
    with torch.no_grad():
        assert torch.equal(model(digits.x_test), model(digits.x_test.float() / 255.0))
    assert meta["accuracy"]["confirmed_test_mean"] == pytest.approx(top["test_acc"].mean())
    assert meta["model"] == "plain2" and meta["family"] == "plain" and meta["depth"] == 2
    assert meta["classes"] == 10 and meta["input_shape"] == [1, 8, 8]
    # the statistics the student was trained with: the training part of the run's split
    assert meta["normalisation"]["mean"] == list(digits.train_stats(0.1, 0)[0])
    assert [h["model"] for h in meta["lineage"]["hops"]] == ["plain4", "plain2"]
    assert meta["lineage"]["student_hop"]["seed"] == best["seed"]
    assert meta["lineage"]["student_hop"]["T"] == 4.0
    extra = {"student.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["student.json"]) == meta


def test_load_student_and_other_paths(run_dir, tmp_path, digits):
    out, side = export(run_dir, tmp_path / "alone.pt", path="nokd")
    model = takd_search.load_student(out)
    assert model(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    meta = json.loads(side.read_text())
    conf = results.load(run_dir)["confirmation"]
    nokd = conf[(conf["method"] == "nokd") & (conf["seed"] == meta["accuracy"]["seed"])]
    acc = _accuracy(model, digits.x_test.float() / 255.0, digits.y_test)
    assert abs(acc - float(nokd["test_acc"].iloc[0])) <= 1e-6
    assert meta["lineage"]["hops"][0]["parent"] is None
    # a numeric path with the space's family, and a searched (not confirmed) path
    assert pick(run_dir, "4-2")["method"] == "top1"
    got = pick(run_dir, "plain6>plain2")
    assert got["phase"] == "search" and got["seed"] == 0 and got["confirmed"] is None


def test_unknown_path_and_missing_weights_are_user_errors(run_dir, tmp_path, capsys):
    with pytest.raises(UserError, match="--path plain8>plain2: not a path of this run"):
        pick(run_dir, "plain8>plain2")
    assert main(["export", str(run_dir), "--path", "top7", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "top1" in err[0] and "nokd" in err[0]
    assert not (tmp_path / "x.pt").exists()
    moved = tmp_path / "run"
    import shutil

    shutil.copytree(run_dir, moved)
    v = json.loads((moved / "versions.json").read_text())
    v["run"]["store"] = str(tmp_path / "empty-store")
    write_json(moved / "versions.json", v)
    with pytest.raises(UserError, match="is not in the store"):
        export(moved, tmp_path / "y.pt")


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed")
def test_onnx_without_the_package_is_one_line(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == (
        "takd-search: error: onnx export needs the onnx package: pip install onnx"
    )


def test_an_exported_student_round_trips_as_a_teacher(run_dir, tmp_path, digits, capsys):
    """Issue 18, Broken 3: an exported student passed back as a teacher without an input
    declaration was normalised twice (measured far below its own test accuracy)."""
    from takd_search.engine.augment import DeviceData
    from takd_search.engine.chain import Context
    from takd_search.engine.hop import TrainConfig
    from takd_search.engine.own_teacher import attach_teacher
    from takd_search.engine.store import Store
    from takd_search.teacher.source import read_teacher

    out, side = export(run_dir, tmp_path / "student.pt")
    meta = json.loads(side.read_text())
    assert meta["teacher_input"] == {"mean": [0.0], "std": [1.0], "size": 8}
    src = read_teacher(out)  # nothing declared: the file declares its own contract
    assert src.input_from == "sidecar" and src.claims["test_acc"] == meta["accuracy"]["test_acc"]
    ctx = Context(DeviceData(digits, "cpu"), TrainConfig(epochs=1), Store(tmp_path / "s"))
    got = attach_teacher(ctx, src).result
    assert got.test_acc == pytest.approx(meta["accuracy"]["test_acc"], abs=1e-6)
    assert got.val_acc == pytest.approx(meta["accuracy"]["val_acc"], abs=1e-6)
    # an explicit declaration still wins; a wrong one measures far below the sidecar's
    # claim, and run-path says so in one line
    res = tmp_path / "res"
    args = ["run-path", "--teacher", str(out), "--path", "teacher>mlp1x8", "--epochs", "1"]
    args += ["--results", str(res), "--name", "bad", "--no-baseline"]
    assert main([*args, "--teacher-mean", "0.9", "--teacher-std", "0.05"]) == 0
    err = capsys.readouterr().err
    warned = [ln for ln in err.splitlines() if "sidecar claims" in ln]
    assert len(warned) == 1 and warned[0].startswith("warning: teacher teacher measures")
    bad = json.loads((res / "bad" / "chain.json").read_text())
    assert bad["hops"][0]["val_acc"] < meta["accuracy"]["val_acc"] - 0.05
    assert bad["teacher"]["input_from"] == "flags" and len(bad["warnings"]) == 1
    assert main([*args[:-3], "--name", "good", "--no-baseline"]) == 0
    assert "sidecar claims" not in capsys.readouterr().err
    good = json.loads((res / "good" / "chain.json").read_text())
    assert good["hops"][0]["test_acc"] == pytest.approx(meta["accuracy"]["test_acc"], abs=1e-6)
    assert good["warnings"] == []


def test_export_reads_a_store_that_moved_with_store(run_dir, tmp_path, digits):
    """Results pulled from a cluster: the run folder names the head's store path, which is
    not here; `--store` names where the pulled store is (docs/cluster.md)."""
    import shutil

    moved = tmp_path / "pulled" / "run"
    shutil.copytree(run_dir, moved)
    store = json.loads((run_dir / "versions.json").read_text())["run"]["store"]
    shutil.copytree(store, tmp_path / "pulled" / "store")
    v = json.loads((moved / "versions.json").read_text())
    v["run"]["store"] = "/home/ray/.cache/takd-search/0123abcd/store"  # the head's
    write_json(moved / "versions.json", v)
    with pytest.raises(UserError, match="pass export --store WHERE_IT_IS"):
        export(moved, tmp_path / "x.pt")
    out = tmp_path / "y.pt"
    assert main(["export", str(moved), "--out", str(out), "--store",
                 str(tmp_path / "pulled" / "store")]) == 0  # fmt: skip
    ref, _ = export(run_dir, tmp_path / "ref.pt")
    x = torch.rand(4, *json.loads(out.with_suffix(".json").read_text())["input_shape"])
    a, b = torch.jit.load(str(out)), torch.jit.load(str(ref))
    assert torch.equal(a(x), b(x))
