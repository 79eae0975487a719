"""The disk estimate (search/disk_plan.py) and devices that follow resources.gpu."""

from __future__ import annotations

import pytest
import torch

from takd_search.cli import main
from takd_search.config import load_space
from takd_search.engine import distill
from takd_search.engine.banks import bank_bytes
from takd_search.errors import UserError
from takd_search.search import disk_plan
from takd_search.search.disk_plan import DiskEstimate, DiskWontFit, GiB

CIFAR100 = ["plain10", "plain8", "plain6", "plain4", "plain2"]

TINY = """\
description: tiny
data: {dataset: digits}
models: {family: plain, teacher: 6, student: 2, candidates: [4], max_tas: 1}
train: {epochs: 2, batch_size: 64}
distill: {T: [2.0, 8.0], alpha: {low: 0.2, high: 0.8}, kd_fraction: 1.0, parent_fraction: 1.0}
search: {n_trials: 3, seed: 0, scheduler: none}
resources: {cpu: 1}
baselines: {confirm_top_k: 1, confirm_seeds: [1, 2]}
"""


def _cifar100_vgg(**kw) -> DiskEstimate:
    space, _, _ = load_space("cifar100_vgg", {})
    args = dict(
        n_train=45_000,
        classes=100,
        input_shape=(3, 32, 32),
        epochs=150,
        augment="crop_flip",
        sizes={m: 0 for m in CIFAR100},
        concurrency=4,  # one H200 at resources.gpu 0.25
        n_search=space.search.n_trials,
        bank_cap=16 * GiB,
    )
    return disk_plan.estimate(space, **{**args, **kw})


def test_cifar100_vgg_at_full_size_fits_in_48_gib():
    est = _cifar100_vgg()
    # fp32 state_dicts of the CIFAR-100 plain book (FACTS.md params + BN buffers)
    assert disk_plan.state_bytes("plain10", 100, (3, 32, 32)) == 11_737_696
    assert disk_plan.state_bytes("plain2", 100, (3, 32, 32)) == 861_216
    # 5 NoKD hops + 48 search x 4 + 48 BLKD + 48 heuristic x 2 + 30 distilled retrainings
    # x 4 (3 procedures x top-3 x 2 selection seeds, 4 distilled methods x 3 report seeds)
    # + 3 NoKD students (methods.trial_counts: the run's own arithmetic)
    assert est.hops == 464
    # the teacher's banks: 6 child seeds (search 0, selection 4 5, report 1 2 3) x 2
    # weights (selected, epoch-75 snapshot) x 150 epochs, 9.0 MB each
    assert est.bank_files == 1800 and bank_bytes(45_000, 100) == 9_004_096
    assert est.banks == est.banks_planned == 1800 * 9_004_096  # 15.1 GiB, under the cap
    assert 6 * GiB < est.store_hops < 7 * GiB
    assert 23 * GiB < est.total < 24 * GiB < 48 * GiB


def test_the_bank_cap_bounds_the_estimate():
    est = _cifar100_vgg(bank_cap=4 * GiB)
    assert est.banks == 4 * GiB < est.banks_planned
    assert est.bank_files == 4 * GiB // bank_bytes(45_000, 100) == 477
    assert "(cap 4 GiB)" in est.text()


def test_a_run_that_cannot_fit_is_refused_in_one_line(monkeypatch):
    est = _cifar100_vgg()
    est.free = {"/data/results": 20 * GiB}
    assert "does NOT fit" in est.text() and "20.0 GiB free at /data/results" in est.text()
    with pytest.raises(DiskWontFit) as e:
        disk_plan.check_fits(est)
    msg = str(e.value)
    assert isinstance(e.value, UserError) and "\n" not in msg
    assert "needs up to 23." in msg and "/data/results has 20.0 GiB free" in msg
    monkeypatch.setenv("TAKD_DISK_CHECK", "0")
    disk_plan.check_fits(est)  # the escape hatch for an upper bound that is too high
    est.free = {"/data/results": 40 * GiB}
    monkeypatch.delenv("TAKD_DISK_CHECK")
    disk_plan.check_fits(est)
    est.already = 20 * GiB  # a resumed run: what it wrote is not needed again
    assert est.needed == est.total - 20 * GiB


def test_the_cli_refuses_before_writing_anything(tmp_path, monkeypatch, capsys):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)
    res = tmp_path / "results"
    monkeypatch.setattr(disk_plan, "free_space", lambda places: {str(res): 1 << 20})
    assert main(["run", "--space", str(space), "--results", str(res)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GiB of disk but" in err, err
    assert not res.exists() or not any(res.iterdir())


def test_the_dry_run_prints_the_disk_next_to_the_free_space(tmp_path, capsys):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)
    res = tmp_path / "results"
    assert main(["run", "--space", str(space), "--results", str(res), "--dry-run"]) == 0
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("disk ")]
    assert "GiB free at" in line and "store hops" in line and "banks" in line
    assert "does NOT fit" not in line and not res.exists()


def test_devices_follow_resources_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a CUDA machine
    assert distill.pick_device(None, gpu=0) == torch.device("cpu")
    assert distill.pick_device(None) == torch.device("cuda")
    assert distill.trial_device(None, 0) == "cpu"
    assert distill.trial_device("cpu", 0) == "cpu"
    assert distill.trial_device(None, 0.25) is None  # Ray's GPU, seen as cuda
    assert distill.trial_device("cuda:0", 0.25) == "cuda:0"
    with pytest.raises(UserError, match="resources.gpu is 0") as e:
        distill.trial_device("cuda", 0)
    with pytest.raises(UserError, match="shows it as cuda:0") as e:
        distill.trial_device("cuda:1", 0.25)
    assert "\n" not in str(e.value)


def test_a_wrong_device_is_refused_before_any_worker_starts(tmp_path, monkeypatch, capsys):
    """On a (pretend) 2-GPU machine, --device cuda:1 passes the machine's own check; with
    resources.gpu 0 no trial gets a GPU, so the run refuses in one line, writing nothing."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)  # resources: {cpu: 1}, so gpu 0
    res = tmp_path / "results"
    args = ["run", "--space", str(space), "--results", str(res), "--device", "cuda:1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "resources.gpu is 0" in err, err
    assert not res.exists() or not any(res.iterdir())
