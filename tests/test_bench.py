"""Smoke tests of the benchmark scripts in bench/: they run at a tiny size and print their
table. They check that the scripts work, never how fast anything is (timings belong in
bench/RESULTS.md, measured as ratios)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_hop_throughput_runs_tiny(capsys, tmp_path):
    import json

    bench = _load("hop_throughput")
    argv = ["--pairs", "plain", "--batches", "64", "--n-train", "200", "--n-test", "20"]
    argv += ["--n-warm", "100", "--reps", "1", "--workers", "0", "--val-fraction", "0.05"]
    assert bench.main(argv + ["--json", str(tmp_path / "rows.json")]) == 0
    out = capsys.readouterr().out
    for method in ("ref", "engine", "engine (no bank)"):
        assert f" {method} " in out
    assert "plain10 -> plain2" in out
    saved = json.loads((tmp_path / "rows.json").read_text())
    assert saved["meta"]["classes"] == 10 and saved["meta"]["compile"] is None
    assert [(r["method"], r["batch"]) for r in saved["rows"]] == [
        ("ref", 128),
        ("engine", 64),
        ("engine (no bank)", 128),
    ]
    assert all(r["img/s"] > 0 for r in saved["rows"]) and saved["rows"][0]["x ref"] == 1.0


def test_hop_throughput_compile_wraps_only_when_asked():
    import torch

    bench = _load("hop_throughput")
    make = lambda: torch.nn.Linear(2, 2)  # noqa: E731
    assert bench.compiled(make, None) is make
    model = bench.compiled(make, "default")()  # compiles lazily, at the first call
    assert isinstance(model, torch._dynamo.eval_frame.OptimizedModule)
    assert isinstance(model._orig_mod, torch.nn.Linear)


def test_sweep_grid_space_is_a_valid_grid(tmp_path):
    from takd_search.config import find_space, load_space

    bench = _load("sweep")
    path = bench.grid_space(find_space("digits_vgg"), tmp_path / "g.yaml", [2, 8], [0.5])
    space, _, _ = load_space(str(path))
    assert space.search.sampler == "grid"
    assert list(space.distill.T) == [2.0, 8.0] and list(space.distill.alpha) == [0.5]


@pytest.mark.parametrize("name", ["store_reuse", "sweep", "hop_throughput"])
def test_bench_scripts_have_help(name):
    bench = _load(name)
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0


def test_sweep_overheads_split_the_wall_time():
    """2 slots, two phases: 10 s of trials in a 8 s span, 1 s gap, 2 s outside."""
    bench = _load("sweep")

    def phase(start, end, trial_s, actor_s):
        return {"start": start, "end": end, "trial_s": trial_s, "actor_s": actor_s}

    run = {
        "wall": 10.0,
        "concurrency": 2,
        "phases": {
            "nokd": phase(100, 104, 6.0, 1.0),
            "search": phase(105, 108, 4.0, 1.0),
            "blkd": phase(None, None, 0.0, 0.0),
            "confirm": phase(None, None, 0.0, 0.0),
        },
    }
    line = bench.overheads(run)
    # span 8 = gaps 1 + actor (2/2) 1 + training (10/2) 5 + idle 1; outside 10 - 8 = 2
    assert "training   5.0" in line and "outside  2.0" in line
    assert "gaps  1.0" in line and "actor  1.0" in line and "idle  1.0" in line


# ---- bench/gpu.sh and its Python parts (bench/gpu_checks.py), tiny, on the CPU ------------


@pytest.mark.slow  # ~30-60 s on 2 shared cores: many torch imports
def test_gpu_checks_run_tiny_on_cpu(tmp_path):
    """Every Python step of bench/gpu.sh but the Ray search, at its --tiny CPU sizes, then
    the summary: the script cannot rot unnoticed between the GPU sessions that run it."""
    import json

    gc = _load("gpu_checks")
    d = tmp_path / "steps"
    base = ["--device", "cpu", "--tiny", "--dir", str(d)]
    for name in ("env", "agree", "flops", "hop150", "profile"):
        assert gc.main([name, *base]) == 0, name
    assert gc.main(["compile", *base, "--pairs", "plain"]) == 0  # resnet8's compile: 20 s
    read = lambda n: json.loads((d / f"{n}.json").read_text())  # noqa: E731

    # resnet8 forward at 32x32: 12.5M multiply-adds (FACTS.md), 2 FLOPs each, counted from
    # the model; a training step is forward + backward, about 3 forwards
    flops = read("flops")["resnet8"]
    assert flops["fwd_gflop_per_img"] == pytest.approx(0.025, rel=0.02)
    assert 2.5 < flops["train_gflop_per_img"] / flops["fwd_gflop_per_img"] < 3.1
    agree = read("agree")
    assert agree["agree"] and agree["diff"] == 0.0  # cpu vs cpu: the same numbers
    assert 0.0 <= agree["cpu_mean"] <= 1.0 and agree["seeds"] == [0, 1]
    hop = read("hop150")["runs"][0]
    assert hop["img_s"] > 0 and hop["est_150_s"] > hop["first_epoch_s"]
    cells = read("compile")["cells"]
    assert [(c["pair"], c["mode"], "error" in c) for c in cells] == [
        ("plain10 -> plain2", "eager", False),
        ("plain10 -> plain2", "default", False),
    ]
    assert all(c["img_s"] > 0 for c in cells) and "x_eager" in cells[1]
    prof = read("profile")
    # 256 images less a 5% validation split, in batches of 128
    assert (prof["n_train"], prof["steps"], prof["time_kind"]) == (243, 2, "cpu")
    assert prof["top"][0]["share"] >= prof["top"][1]["share"] > 0  # sorted, real times

    (d / "status.tsv").write_text(
        "".join(f"{n}\tOK\t1\t\n" for n in ("env", "agree", "flops", "hop150", "compile"))
        + "search\tSKIPPED\t0\tno ray here\nprofile\tFAILED (rc 1)\t2\tboom\n"
    )
    assert gc.main(["summary", "--device", "cpu", "--dir", str(d)]) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "CPU DRY RUN of the GPU script: no GPU numbers" in summary
    assert "| search | SKIPPED | 0 | no ray here |" in summary
    assert "| profile | FAILED (rc 1) | 2 |" in summary
    assert "resnet8 0.07" in summary  # flops row: train GFLOP per image
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["flops"]["resnet8"] == flops and len(results["status"]) == 7


def _gpu_sh(tmp_path, *args, **env):
    import os
    import subprocess

    cmd = ["bash", str(BENCH / "gpu.sh"), "--out", str(tmp_path / "out"), *args]
    full_env = {k: v for k, v in os.environ.items() if k != "OUT"} | env
    p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120)
    status = (tmp_path / "out" / "steps" / "status.tsv").read_text()
    return p, status


@pytest.mark.slow  # ~30-60 s on 2 shared cores: many torch imports
def test_gpu_sh_guards_each_step(tmp_path):
    """No CUDA here: with --device cuda every step says SKIPPED and the script still ends
    with its table; a step whose command fails is FAILED; a spent budget skips the rest."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-GPU guard cannot be shown here")
    p, status = _gpu_sh(tmp_path, "--device", "cuda", "--only", "env")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "env\tSKIPPED" in status and "tests" not in status  # --only: one step
    assert "torch sees no CUDA device" in status
    assert (tmp_path / "out" / "summary.md").exists()
    assert (tmp_path / "out" / "steps.tar.gz").stat().st_size > 0

    p, status = _gpu_sh(tmp_path, "--device", "cpu", "--only", "env", PYTHON="false")
    assert "env\tFAILED (rc 1)" in status

    p, status = _gpu_sh(tmp_path, "--device", "cpu", "--only", "env,flops", "--budget", "20")
    assert "env\tSKIPPED\t0\tno time left in the 20s budget" in status
    assert "flops\tSKIPPED" in status
