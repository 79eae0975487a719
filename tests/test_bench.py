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


def test_hop_throughput_runs_tiny(capsys):
    bench = _load("hop_throughput")
    argv = ["--pairs", "plain", "--batches", "64", "--n-train", "200", "--n-test", "20"]
    argv += ["--n-warm", "100", "--reps", "1", "--workers", "0", "--val-fraction", "0.05"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    for method in ("ref", "engine", "engine (no bank)"):
        assert f" {method} " in out
    assert "plain10 -> plain2" in out


def test_sweep_grid_space_is_a_valid_grid(tmp_path):
    from takd_search.spec import find_space, load_space

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
