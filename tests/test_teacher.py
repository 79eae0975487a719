"""Bring your own teacher: TorchScript and state_dict files, the input contract, the
accuracy measured on the run's splits, fine-tuning, and the CLI/space/trial plumbing."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from takd_search import models
from takd_search.cli import main
from takd_search.engine.augment import DeviceData
from takd_search.engine.chain import Context, hop_rows, run_chain
from takd_search.engine.distill import accuracy
from takd_search.engine.hop import HopParams, TrainConfig
from takd_search.engine.own_teacher import attach_teacher
from takd_search.engine.path import PathError, parse_path
from takd_search.engine.train import train_hop
from takd_search.teacher.build import InputAdapter
from takd_search.teacher.source import FineTune, TeacherError, TeacherInput, read_teacher

TEACHER_MEAN, TEACHER_STD = 0.5, 0.25  # the convention our test teacher was "trained" with


class ForeignInput(nn.Module):
    """A network trained on our digits input, re-exposed as one that expects another
    convention: (x/255 - 0.5)/0.25, as a teacher trained elsewhere would."""

    def __init__(self, net: nn.Module, data_mean: float, data_std: float):
        super().__init__()
        self.net = net
        self.a = (TEACHER_STD / data_std, (TEACHER_MEAN - data_mean) / data_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.a[0] + self.a[1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """plain4 trained 3 epochs on digits: its weights and its accuracy on our split."""
    from takd_search.data import load_dataset

    ds = load_dataset("digits")
    data = DeviceData(ds, "cpu")
    make = lambda: models.create_model_from_name("plain4", 10, ds.input_shape)  # noqa: E731
    res = train_hop(make, data, TrainConfig(epochs=3, batch_size=64), seed=0)
    net = make()
    net.load_state_dict(res.state)
    net.eval()
    root = tmp_path_factory.mktemp("teacher")
    ts = root / "teacher.pt"
    torch.jit.script(ForeignInput(net, ds.mean[0], ds.std[0]).eval()).save(str(ts))
    sd = root / "plain4_state.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in res.state.items()}}, sd)
    npz = root / "digits.npz"
    np.savez(
        npz,
        x_train=ds.x_train[:, 0].numpy(),
        y_train=ds.y_train.numpy(),
        x_test=ds.x_test[:, 0].numpy(),
        y_test=ds.y_test.numpy(),
    )
    return {
        "ds": ds,
        "net": net,
        "val": accuracy(net, data, "val"),
        "test": accuracy(net, data, "test"),
        "torchscript": ts,
        "state_dict": sd,
        "npz": npz,
    }


def _ctx(ds, store, epochs=3):
    return Context(DeviceData(ds, "cpu"), TrainConfig(epochs=epochs, batch_size=64), store)


def test_run_path_cli_with_a_torchscript_teacher_on_npz_data(trained, tmp_path, capsys):
    res = tmp_path / "results"
    args = ["run-path", "--teacher", str(trained["torchscript"]), "--path", "teacher>plain2"]
    args += ["--dataset", f"npz:{trained['npz']}", "--epochs", "2", "--results", str(res)]
    args += ["--teacher-mean", "0.5", "--teacher-std", "0.25", "--name", "byo"]
    assert main(args) == 0
    out = json.loads((res / "byo" / "chain.json").read_text())
    teacher, student = out["hops"]
    # the npz holds the digits images, split alike: the teacher's accuracy is measured on
    # exactly the numbers the net scores on our split, nothing read from the file
    assert teacher["model"] == "teacher" and teacher["status"] == "given"
    assert teacher["val_acc"] == pytest.approx(trained["val"], abs=1e-6)
    assert teacher["test_acc"] == pytest.approx(trained["test"], abs=1e-6)
    assert trained["test"] > 0.9
    assert teacher["params"] == models.count_params(trained["net"])
    assert student["model"] == "plain2" and student["parent"] == "teacher"
    assert student["T"] == 4.0 and student["alpha"] == 0.5 and student["status"] == "trained"
    assert [r["epoch"] for r in student["curve"]] == [1, 2]
    assert all(r["kd"] for r in student["curve"])
    alone = out["student_alone"]
    assert alone["key"] != student["key"] and [r["kd"] for r in alone["curve"]] == [False] * 2
    assert 0.5 < student["test_acc"] <= 1 and 0.5 < alone["test_acc"] <= 1
    sha = hashlib.sha256(trained["torchscript"].read_bytes()).hexdigest()
    assert out["teacher"]["sha256"] == sha and out["teacher"]["input"]["mean"] == [0.5]
    # the store keeps the measurement under the file's content, contract and split
    meta = json.loads((res / ".store" / "hops" / teacher["key"] / "meta.json").read_text())
    assert meta["lineage"]["teacher"] == out["teacher"]["digest"]
    assert meta["metrics"]["test_acc"] == teacher["test_acc"]
    student_meta = json.loads((res / ".store" / "hops" / student["key"] / "meta.json").read_text())
    assert student_meta["lineage"]["parents"] == [teacher["key"]]
    assert len(student_meta["metrics"]["curve"]) == 2
    table = capsys.readouterr().out
    assert "teacher" in table and "given" in table


def test_the_input_contract_is_applied_not_trusted(trained, store):
    """Undeclared, the same file sees the wrong normalisation: its measured accuracy
    drops, and it is another teacher (another key)."""
    ds = trained["ds"]
    declared = read_teacher(trained["torchscript"], teacher_input={"mean": [0.5], "std": [0.25]})
    raw = read_teacher(trained["torchscript"])
    a = attach_teacher(_ctx(ds, store), declared)
    b = attach_teacher(_ctx(ds, store), raw)
    assert a.result.val_acc == pytest.approx(trained["val"], abs=1e-6)
    assert b.result.val_acc < a.result.val_acc - 0.2
    assert a.spec.key != b.spec.key and declared.digest != raw.digest
    again = attach_teacher(_ctx(ds, store), declared)  # measured once per split
    assert again.reused and again.result.test_acc == a.result.test_acc


def test_a_state_dict_with_our_architecture(trained, store):
    """A checkpoint dict {'state_dict': ...} with DataParallel's 'module.' prefix."""
    src = read_teacher(trained["state_dict"], arch="vgg4")
    assert src.arch == "plain4"
    t = attach_teacher(_ctx(trained["ds"], store), src)
    assert t.result.val_acc == pytest.approx(trained["val"], abs=1e-6)
    assert t.result.test_acc == pytest.approx(trained["test"], abs=1e-6)


def test_input_adapter_converts_normalisation_channels_and_size():
    data_mean, data_std = (0.3,), (0.2,)
    tin = TeacherInput((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 16)
    adapter = InputAdapter(nn.Identity(), data_mean, data_std, tin)
    assert list(adapter.state_dict()) == []  # conversion constants are not weights
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    ours = (x.float() / 255 - 0.3) / 0.2
    got = adapter(ours)
    assert got.shape == (2, 3, 16, 16)
    up = torch.nn.functional.interpolate(
        x.float().expand(-1, 3, -1, -1) / 255, size=(16, 16), mode="bilinear"
    )
    mean = torch.tensor(tin.mean).view(1, 3, 1, 1)
    want = (up - mean) / torch.tensor(tin.std).view(1, 3, 1, 1)
    assert torch.allclose(got, want, atol=1e-5)
    # a white image is white to the teacher, whatever our statistics
    white = (torch.full((1, 1, 8, 8), 1.0) - 0.3) / 0.2
    assert torch.allclose(adapter(white)[0, :, 0, 0], (1 - mean.view(3)) / torch.tensor(tin.std))
    # nothing declared: the teacher gets our batch unchanged
    assert torch.equal(
        InputAdapter(nn.Identity(), data_mean, data_std, TeacherInput())(ours), ours
    )


def test_fine_tuning_a_teacher_pretrained_on_other_classes(trained, store, tmp_path):
    """A state_dict with a 5-class head (another task) gets a fresh 10-class head when
    fine-tuned; without fine-tuning the mismatch is one clear line."""
    ds = trained["ds"]
    five = {k: v for k, v in trained["net"].state_dict().items()}
    head = [k for k in five if k.startswith("classifier")]
    for k in head:
        five[k] = five[k][:5].clone()
    path = tmp_path / "five.pt"
    torch.save(five, path)
    with pytest.raises(TeacherError, match="--finetune-epochs"):
        attach_teacher(_ctx(ds, store), read_teacher(path, arch="plain4"))
    src = read_teacher(path, arch="plain4", finetune=FineTune(epochs=2, lr=0.02))
    t = attach_teacher(_ctx(ds, store), src)
    assert not t.reused and t.spec.train.epochs == 2 and t.spec.train.lr == 0.02
    assert len(t.result.curve) == 2 and t.result.test_acc > 0.8  # the features transfer
    assert store.stats.trained == 1
    ctx = _ctx(ds, store, epochs=2)  # another trial: the fine-tuned teacher is loaded
    again = attach_teacher(ctx, src)
    assert again.reused and again.result.test_acc == t.result.test_acc
    rows = hop_rows(run_chain(ctx, ["teacher", "plain2"], HopParams(T=4, alpha=0.7)))
    assert rows[0]["status"] == "reused" and rows[0]["epochs"] == 2
    assert rows[1]["parent"] == "teacher" and 0.3 < rows[1]["val_acc"] <= 1
    assert store.stats.trained == 2  # the teacher once, plain2 once


def test_user_errors_are_one_line(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if its import failed
    monkeypatch.setitem(sys.modules, "timm", None)
    base = ["run-path", "--path", "teacher>plain4", "--results", str(tmp_path)]
    cases = [
        (["--teacher", str(trained["state_dict"]), "--teacher-arch", "torchvision:resnet50"],
         "needs torchvision, which cannot be imported here"),
        (["--teacher", str(trained["state_dict"]), "--teacher-arch", "timm:resnet18"],
         "needs timm, which cannot be imported here"),
        (["--teacher", str(trained["state_dict"])], "holds a state_dict, not TorchScript"),
        (["--teacher", str(tmp_path / "nope.pt")], "not found"),
        ([], "give your teacher's file with --teacher"),
        (["--teacher-size", "224"], "add --teacher PATH"),
        (["--teacher", str(trained["torchscript"]), "--teacher-mean", "0.5"],
         "give mean and std together"),
        (["--teacher", str(trained["state_dict"]), "--teacher-arch", "cnn9"], "unknown model"),
    ]  # fmt: skip
    for extra, msg in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], (extra, err)
    # a teacher for other classes, and one that cannot take the run's images
    wrong = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 5)))
    wrong.save(str(tmp_path / "five.pt"))
    assert main(base + ["--teacher", str(tmp_path / "five.pt")]) == 2
    assert "outputs 5 logits per image but digits has 10 classes" in capsys.readouterr().err
    assert main(base + ["--teacher", str(tmp_path / "five.pt"), "--teacher-size", "9"]) == 2
    err = capsys.readouterr().err
    assert "fails on a batch of shape [2, 1, 9, 9]" in err and "--teacher-size" in err
    assert not (tmp_path / ".store").exists()  # nothing written before the checks pass


def test_path_tokens_and_space_rules(tmp_path):
    assert parse_path("Teacher>resnet20>resnet8") == ["teacher", "resnet20", "resnet8"]
    assert parse_path("plain10>plain4>mlp2x800") == ["plain10", "plain4", "mlp2x800"]
    with pytest.raises(PathError, match="can only be the first model"):
        parse_path("plain10>teacher")
    with pytest.raises(PathError, match="plain depths are 2, 4, 6, 8, 10"):
        parse_path("teacher>cnn4")
    from takd_search.config import SpecError, load_space

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models: {teacher: teacher, student: teacher, teacher_arch: 'keras:x',\n"
        "         teacher_input: {mean: [0.5, 0.5], std: [0.1], size: 0},\n"
        "         teacher_finetune: {epochs: 0}}\n"
    )
    with pytest.raises(SpecError) as e:
        load_space(str(bad))
    msg = str(e.value)
    for want in (
        "models.teacher: 'teacher' needs models.teacher_file",
        "models.student: 'teacher' (your own teacher file) can only be models.teacher",
        "models.teacher_arch: teacher architecture 'keras:x'",
        "models.teacher_input: mean has 2 values but std has 1",
        "models.teacher_input: size 0 must be a side in 1..4096 pixels",
        "models.teacher_finetune.epochs: 0 must be at least 1",
    ):
        assert want in msg, want
    stray = tmp_path / "stray.yaml"
    stray.write_text("models: {teacher: plain10, student: plain2, teacher_file: t.pt}\n")
    with pytest.raises(SpecError, match="set models.teacher: teacher"):
        load_space(str(stray))


def test_a_trial_receives_the_teacher_without_ray(trained, tmp_path, monkeypatch):
    """trial.run_trial as either runner runs it: the TeacherSource (file bytes) arrives
    as a parameter, the worker's Context measures it once, the chain distils from it;
    the final report counts the correct validation images."""
    from takd_search.search import trial

    reports = []
    report = lambda m: reports.append(dict(m))  # noqa: E731
    monkeypatch.setattr(trial, "_CONTEXTS", {})
    src = read_teacher(trained["torchscript"], teacher_input={"mean": [0.5], "std": [0.25]})
    src = replace(src, path="/elsewhere/teacher.pt")  # workers never open the file
    run = {
        "device": "cpu",
        "val_fraction": 0.1,
        "split_seed": 0,
        "augment": None,
        "store": str(tmp_path / "store"),
        "train": TrainConfig(epochs=2, batch_size=64).as_dict(),
        "snapshots": [],
        "seed": 0,
        "cpus": 1,
    }
    hop = {"T": 4.0, "alpha": 0.9, "kd_fraction": 1.0, "parent_fraction": 0.5}
    config = {"path": "teacher>plain2", "guidance": "chain", "hops": [hop]}
    trial.run_trial(config, run, dataset=trained["ds"], teacher=src, report=report)
    final = reports[-1]
    assert final["val_correct"] == round(final["val_acc"] * final["val_total"])
    assert final["val_total"] > 0 and final["test_acc"] is None  # no `sees_test`
    # epoch 1 per epoch; the last epoch goes out as the final report (a scheduler stops
    # trials at max_t, and a stop there must not swallow the trial's details)
    assert final["finished"] and [r["epoch"] for r in reports] == [1, 2]
    t, s = final["hop_rows"]
    assert t["model"] == "teacher" and t["test_acc"] == pytest.approx(trained["test"], abs=1e-6)
    assert s["parent"] == "teacher" and s["alpha"] == 0.9
    assert s["parent_epoch"] is None  # a brought teacher has no epochs to stop at
    assert final["val_acc"] == s["val_acc"] > 0.5 and len(s["curve"]) == 2
    # NoKD of the teacher (the search's first phase) is its measurement
    trial.run_trial(
        {"path": "teacher", "seed": 0}, run, dataset=trained["ds"], teacher=src, report=report
    )
    assert reports[-1]["hop_rows"][0]["status"] == "given"
    assert reports[-1]["val_acc"] == pytest.approx(trained["val"], abs=1e-6)
