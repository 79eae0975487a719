"""Ray's own ways in (issue 23): `takd-search run` joins the cluster in $RAY_ADDRESS (what
`ray job submit` and a KubeRay RayJob set for a job's driver) instead of starting a
private local Ray, and `ray job submit -- python -m takd_search run ...` runs a search on
a real token-protected head on 127.0.0.1 (the head of test_cluster_jobs.py). Also:
importing the search package changes no environment variable of the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from takd_search.commands import ray_address

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cluster_jobs import Head, _alive, _tiny_space  # noqa: E402  (the shared head)


# ---- without a cluster ---------------------------------------------------------------------
def test_run_joins_ray_address_unless_address_is_given(monkeypatch):
    class A:
        address = None

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(A()) is None  # a private local Ray
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert ray_address(A()) == "10.0.0.5:6379"
    monkeypatch.setenv("RAY_ADDRESS", "http://10.0.0.5:8265")  # a job server, for `ray job`
    assert ray_address(A()) is None
    A.address = "10.0.0.9:6379"
    assert ray_address(A()) == "10.0.0.9:6379"  # --address wins


def test_importing_the_search_package_sets_no_environment_variable():
    code = (
        "import os, json, ray, ray.tune  # Ray's own import sets RAY_CLIENT_MODE\n"
        "before = dict(os.environ)\n"
        "import takd_search.search, takd_search.search.ray_session, takd_search.search.run\n"
        "from takd_search.search import run_search, RunPlan\n"
        "keys = set(before) | set(os.environ)\n"
        "changed = {k for k in keys if before.get(k) != os.environ.get(k)}\n"
        "print(json.dumps(sorted(changed)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNE_", "RAY_"))}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_the_run_env_is_set_for_the_tools_runs_and_given_back(monkeypatch):
    from takd_search.search import ray_session

    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "7")  # the user's own value is kept
    ray_session.set_run_env()
    assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "7"
    ray_session.restore_run_env()
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "7"


# ---- a real head on 127.0.0.1 --------------------------------------------------------------
@pytest.fixture(scope="module")
def head():
    h = Head()
    try:
        h.wait_ready()
        yield h
    finally:
        h.stop()
    left = [p.pid for p in h.seen.values() if _alive(p)]
    assert not left, f"Ray processes left behind: {left}"


def _env(head: Head, tmp_path: Path, **extra) -> dict:
    """A user's shell next to the head: its token file, no other Ray settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TUNE_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        HOME=str(tmp_path / "home"),  # no ~/.ray/auth_token to fall back on
        RAY_AUTH_TOKEN_PATH=str(head.token_file),
        **extra,
    )
    return env


def _check_run_on_head(results: Path, head: Head) -> Path:
    (run,) = sorted(results.glob("digits_tiny-*"))
    assert json.loads((run / "state.json").read_text())["status"] == "complete"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["compute"]["search_trials"] == 2
    # the trials ran in the head's Ray session (its logs are under the head's temp dir),
    # and no private local Ray was started (it would have left its token in the run folder)
    logs = Path(os.readlink(run / "ray_logs")).resolve()
    assert head.tmp.resolve() in logs.parents, logs
    assert not (run / "ray_token").exists()
    return run


@pytest.mark.slow
def test_run_joins_the_head_named_by_ray_address(head, tmp_path):
    space, results = _tiny_space(tmp_path), tmp_path / "results"
    r = subprocess.run(
        [sys.executable, "-m", "takd_search", "run", "--space", str(space)]
        + ["--trials", "2", "--epochs", "1", "--results", str(results), "--no-report"],
        env=_env(head, tmp_path, RAY_ADDRESS=head.gcs),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    head.remember()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _check_run_on_head(results, head)


@pytest.mark.slow
def test_ray_job_submit_runs_takd_search_on_the_head(head, tmp_path):
    """The docs/cluster.md example: Ray's own job CLI, the entrypoint naming its
    interpreter (a job's shell has the PATH of whoever ran `ray start`), and an absolute
    results folder (the job runs in a temporary copy of its working dir)."""
    space, results = _tiny_space(tmp_path), tmp_path / "results"
    entrypoint = [sys.executable, "-m", "takd_search", "run", "--space", str(space)]
    entrypoint += ["--trials", "2", "--epochs", "1", "--results", str(results), "--no-report"]
    r = subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", "job", "submit"]
        + ["--address", head.address, "--", *entrypoint],
        env=_env(head, tmp_path, RAY_AUTH_MODE="token"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    head.remember()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "succeeded" in out.lower(), out[-4000:]
    _check_run_on_head(results, head)
