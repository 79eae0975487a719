"""Real searches: Ray started locally by the tool, real Optuna, real files."""

import io
import json
import pickle
import tarfile

import numpy as np
import pandas as pd
import pytest

from takd_search.cli import main

TINY = """
description: a 4-trial digits search for tests
data: {{dataset: {dataset}{data_dir}}}
models: {{family: plain, teacher: {teacher}, student: 2, candidates: {cands}, max_tas: 2}}
train: {{epochs: 2, batch_size: 64}}
distill: {{T: [2.0, 8.0], alpha: {{low: 0.2, high: 0.8}}, kd_epochs: [0.5, 1.0],
          parent_epoch: [0.5, 1.0]}}
search: {{n_trials: 4, seed: 0}}
resources: {{cpu: 1}}
baselines: {{confirm_top_k: 1, confirm_seeds: [1, 2]}}
"""


def _write(tmp_path, dataset="digits", data_dir="", teacher=6, cands="[4]"):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY.format(dataset=dataset, data_dir=data_dir, teacher=teacher, cands=cands))
    return p


def test_digits_search_with_4_trials_writes_the_run_folder(tmp_path, capsys):
    space = _write(tmp_path, teacher=8, cands="[6, 4]")
    res = tmp_path / "results"
    assert main(["run", "--space", str(space), "--results", str(res)]) == 0
    out = capsys.readouterr()
    (run,) = [d for d in res.iterdir() if d.name.startswith("tiny-")]
    for f in (
        "trials.csv",
        "baselines.csv",
        "confirmation.csv",
        "summary.json",
        "space.yaml",
        "versions.json",
    ):
        assert (run / f).exists(), f
    trials = pd.read_csv(run / "trials.csv")
    search = trials[trials.phase == "search"]
    assert len(search) == 4 and search.trial_id.is_unique
    assert (search.status == "completed").all()
    assert search.val_acc.between(0.05, 1).all()
    assert search.test_acc.isna().all()  # the search never looks at the test set
    assert set(search.path) <= {
        "plain8>plain2",
        "plain8>plain6>plain2",
        "plain8>plain4>plain2",
        "plain8>plain6>plain4>plain2",
    }
    assert (trials.phase == "blkd").sum() >= 2
    base = pd.read_csv(run / "baselines.csv")
    nokd = base[base.kind == "nokd"].set_index("model")
    assert set(nokd.index) == {"plain8", "plain6", "plain4", "plain2"}
    assert nokd.loc["plain8", "params"] > nokd.loc["plain2", "params"]
    conf = pd.read_csv(run / "confirmation.csv")
    assert set(conf.method) >= {"top1", "blkd", "nokd", "heuristic"}
    assert sorted(conf[conf.method == "top1"].seed) == [1, 2]
    assert conf.test_acc.between(0.05, 1).all()
    # every confirmation seed distils from the search's teacher: trained once in the run
    assert (conf[conf.method != "nokd"].teacher_seed == 0).all()
    assert conf[conf.method == "nokd"].teacher_seed.isna().all()
    teacher_trainings = [
        h
        for ph in ("nokd", "search", "blkd", "confirm")
        for r in json.loads((run / "phases" / f"{ph}.json").read_text())
        for h in r["metrics"]["hop_rows"]
        if h["model"] == "plain8" and h["status"] == "trained"
    ]
    assert len(teacher_trainings) == 1
    s = json.loads((run / "summary.json").read_text())
    assert s["winner"] in ("top1", "heuristic") and s["best"]["seeds"] == 2
    assert s["heuristic_ta"] in ("plain6", "plain4")
    assert s["compute"]["search_trials"] == 4 and s["compute"]["hops_reused"] > 0
    assert "best path" in out.out and "BLKD" in out.out and "NoKD" in out.out
    assert "[search] 4/4 done" in out.err

    # the same command again finds the run complete: a new run, everything reused
    assert main(["run", "--space", str(space), "--results", str(res)]) == 0
    runs = sorted(d for d in res.iterdir() if d.name.startswith("tiny-"))
    assert len(runs) == 2
    again = pd.read_csv(runs[1] / "trials.csv")
    assert int(again.hops_trained.sum()) == 0


def _tiny_cifar100(folder, n_per_class=12, n_test=2):
    rng = np.random.default_rng(0)

    def split(n):
        labels = np.repeat(np.arange(100), n)
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        data[:, :1024] = (labels[:, None] * 2).astype(np.uint8)  # a learnable red channel
        return {"data": data, "fine_labels": labels.tolist(), "coarse_labels": [0] * len(labels)}

    path = folder / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, n in (("train", n_per_class), ("test", n_test)):
            blob = pickle.dumps(split(n))
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def test_cifar100_vgg_space_runs_on_a_tiny_real_format_archive(tmp_path, monkeypatch, capsys):
    import hashlib

    from takd_search import data

    archive = _tiny_cifar100(tmp_path)
    monkeypatch.setitem(
        data.CIFAR_MD5, "cifar-100-python.tar.gz", hashlib.md5(archive.read_bytes()).hexdigest()
    )
    res = tmp_path / "results"
    code = main(
        [
            "run",
            "--space",
            "cifar100_vgg",
            "--data-dir",
            str(tmp_path),
            "--trials",
            "2",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--gpus-per-trial",
            "0",
            "--cpus-per-trial",
            "1",
            "--results",
            str(res),
        ]
    )
    assert code == 0, capsys.readouterr().err
    (run,) = list(res.glob("cifar100_vgg-*"))
    trials = pd.read_csv(run / "trials.csv")
    assert (trials.phase == "search").sum() == 2
    base = pd.read_csv(run / "baselines.csv")
    assert base[base.kind == "nokd"].params.max() == 2_931_460  # CIFAR-100 book, plain10
    assert json.loads((run / "summary.json").read_text())["dataset"] == "cifar100"


@pytest.mark.parametrize("flag", ["--trials", "--epochs"])
def test_flags_are_validated_like_the_file(flag, tmp_path, capsys):
    assert main(["run", "--space", "digits_vgg", flag, "0", "--results", str(tmp_path)]) == 2
    assert "must be at least 1" in capsys.readouterr().err
