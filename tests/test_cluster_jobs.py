"""`takd-search submit / status / stop` against a real Ray cluster on loopback.

The module starts its own token-protected Ray head (`ray start --head --block`) as a child
process in a new session, on free ports and a private temp dir, bound to 127.0.0.1, and
stops it in a finalizer by killing its process group and every process it spawned (never
`ray stop`, which would hit other clusters on the machine). The end-to-end tests submit
the digits space with a small budget: one to the end, one stopped mid-search and
resubmitted. They need `ray[default]` (the `cluster` extra) and take about 3 minutes.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray  # noqa: F401  (also puts the psutil that Ray bundles on sys.path)

from takd_search import cli, cluster
from takd_search.cluster import jobs

ROOT = Path(__file__).resolve().parent.parent


# ---- a private loopback cluster ---------------------------------------------------------
def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


class Head:
    """A Ray head on 127.0.0.1 with token auth, owned by this test module."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="takd-ray-", dir="/tmp"))  # short: sockets
        self.token = secrets.token_hex(32)
        self.token_file = self.tmp / "auth_token"
        self.token_file.write_text(self.token)
        (gcs, dash, client, nm, om, agent, agent_grpc, rte, metrics) = _free_ports(9)
        worker_lo = 20000 + secrets.randbelow(12000)  # below the ephemeral range
        self.address = f"http://127.0.0.1:{dash}"  # the job server
        self.gcs = f"127.0.0.1:{gcs}"  # what `ray start` prints and RAY_ADDRESS names
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_file),
            # Ray swaps 127.0.0.1 for the host's routable address unless told it is
            # not a cluster host: this keeps every Ray socket on loopback.
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            RAY_USAGE_STATS_ENABLED="0",
        )
        args = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--port={gcs}",
            f"--dashboard-port={dash}",
            f"--ray-client-server-port={client}",
            f"--node-manager-port={nm}",
            f"--object-manager-port={om}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={rte}",
            f"--metrics-export-port={metrics}",
            f"--min-worker-port={worker_lo}",
            f"--max-worker-port={worker_lo + 200}",
            "--num-cpus=2",
            "--num-gpus=0",
            f"--temp-dir={self.tmp / 'ray'}",
            "--include-dashboard=true",
            "--disable-usage-stats",
        ]
        self.log = open(self.tmp / "head.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.seen: dict[int, object] = {}

    def wait_ready(self, timeout: float = 120) -> None:
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.token}"}
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {(self.tmp / 'head.log').read_text()}")
            try:
                JobSubmissionClient(self.address, headers=headers).list_jobs()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def remember(self) -> None:
        """Note the head's process tree (workers leave its process group)."""
        for p in _descendants(self.proc.pid):
            self.seen[p.pid] = p

    def stop(self) -> None:
        import psutil

        self.remember()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in self.seen.values():  # processes this head started, by pid
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(list(self.seen.values()), timeout=10)
        self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


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


def _alive(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def client_env(head, monkeypatch, tmp_path):
    """The client finds the head's token through RAY_AUTH_TOKEN_PATH, as a user would;
    RAY_AUTH_MODE is left unset on purpose (Ray's own job client would then send none)."""
    for k in list(os.environ):
        if k.startswith("RAY_AUTH") or k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(head.token_file))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.ray/auth_token to fall back on
    return head


def _tiny_space(tmp_path: Path) -> Path:
    """digits_vgg cut down to plain6 -> plain2 with one TA candidate, one confirmation seed
    and no selection seeds (the winner is the best confirmed candidate on the search's own
    ranking): a run of a few trials takes well under a minute; each phase it leaves out
    saves a Tune experiment's start-up (10-15 s on 2 cores: new trial actors import torch
    and Ray Tune)."""
    text = (ROOT / "search_spaces" / "digits_vgg.yaml").read_text()
    for old, new in (
        ("teacher: 10", "teacher: 6"),
        ("candidates: [8, 6, 4]", "candidates: [4]"),
        ("max_tas: 3", "max_tas: 1"),
        ("confirm_top_k: 3", "confirm_top_k: 1"),
        ("confirm_seeds: [1, 2, 3, 4, 5]", "confirm_seeds: [1]\n  select_seeds: []"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "digits_tiny.yaml"
    path.write_text(text)
    return path


def _run_dir(storage: Path) -> Path:
    runs = sorted((storage / "results").glob("digits_tiny-*"))
    assert len(runs) == 1, runs
    return runs[0]


def _finished_trials(phase_dir: Path) -> dict[str, float]:
    """trial_id -> score of the trials Tune's latest snapshot holds as finished."""
    states = sorted(glob.glob(str(phase_dir / "experiment_state-*.json")))
    if not states:
        return {}
    try:
        data = json.loads(Path(states[-1]).read_text())
    except (OSError, ValueError):  # being rewritten
        return {}
    out = {}
    for trial, meta in data["trial_data"]:
        trial = json.loads(trial) if isinstance(trial, str) else trial
        meta = json.loads(meta) if isinstance(meta, str) else meta
        last = meta.get("last_result") or {}
        if trial["status"] == "TERMINATED" and last.get("finished"):
            out[trial["trial_id"]] = last["score"]
    return out


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


# ---- end to end ---------------------------------------------------------------------------
@pytest.mark.slow
def test_submit_runs_a_search_on_the_cluster(client_env, tmp_path, capsys):
    space, storage = _tiny_space(tmp_path), tmp_path / "storage"
    rc = cli.main(
        ["submit", "--address", client_env.address, "--space", str(space)]
        + ["--storage", str(storage), "--trials", "2", "--epochs", "1", "--follow"]
    )
    out = capsys.readouterr()
    client_env.remember()
    assert rc == 0, out.out[-3000:] + out.err[-2000:]
    assert "[confirm]" in out.out  # the job's log was streamed
    run = _run_dir(storage)
    assert json.loads((run / "state.json").read_text())["status"] == "complete"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["compute"]["search_trials"] == 2
    search = [r for r in _csv(run / "trials.csv") if r["phase"] == "search"]
    assert [r["status"] for r in search] == ["completed", "completed"]
    assert any((storage / "store").rglob("*")), "the hop store was not written to --storage"

    assert cli.main(["status", "--address", client_env.address]) == 0
    listing = capsys.readouterr().out
    assert "SUCCEEDED" in listing and str(storage / "results") in listing
    assert cli.main(["status", "no-such-job", "--address", client_env.address]) == 2
    assert "no job no-such-job" in capsys.readouterr().err


@pytest.mark.slow
def test_stop_and_resubmit_keeps_finished_trials(client_env, tmp_path, capsys):
    TRIALS = 24  # enough that the stop lands inside the search phase
    space, storage = _tiny_space(tmp_path), tmp_path / "storage"
    submit = ["submit", "--address", client_env.address, "--space", str(space)]
    submit += ["--storage", str(storage), "--trials", str(TRIALS), "--epochs", "1"]
    assert cli.main(submit) == 0
    job = capsys.readouterr().out.strip().splitlines()[-1]
    assert cli.main(submit) == 2  # one driver per run at a time
    assert f"job {job} is still running this search" in capsys.readouterr().err

    logs = cluster.client(client_env.address)
    deadline = time.monotonic() + 240
    while "[search] 1/" not in logs.get_job_logs(job):  # stop once a search trial finished
        assert time.monotonic() < deadline, "no search trial finished in time"
        time.sleep(0.2)
    client_env.remember()
    assert cli.main(["stop", job, "--address", client_env.address]) == 0
    err = capsys.readouterr().err
    assert f"job {job}: STOPPED" in err and "resume it with: takd-search submit" in err
    run = _run_dir(storage)
    assert json.loads((run / "state.json").read_text())["status"] == "interrupted"
    before = _finished_trials(run / "tune" / "search")  # what the stop's snapshot kept
    nokd = (run / "phases" / "nokd.json").read_text()
    with capsys.disabled():
        print(f"\nstopped with {len(before)} of {TRIALS} search trials finished")
    assert 1 <= len(before) < TRIALS, "the stop came after the search phase"

    assert cli.main(submit + ["--follow"]) == 0  # the same command resumes the run
    out = capsys.readouterr()
    assert f"resuming the unfinished run {run}" in out.out
    assert "[nokd] already complete" in out.out
    assert _run_dir(storage) == run
    assert json.loads((run / "state.json").read_text())["status"] == "complete"
    assert (run / "phases" / "nokd.json").read_text() == nokd  # kept, not re-run
    search = [r for r in _csv(run / "trials.csv") if r["phase"] == "search"]
    ids = [r["trial_id"] for r in search]
    assert len(ids) == TRIALS and len(set(ids)) == TRIALS, ids
    for trial_id, score in before.items():  # each finished trial once, with its own result
        (row,) = [r for r in search if r["trial_id"] == trial_id]
        assert row["status"] == "completed"
        assert float(row["val_acc"]) == pytest.approx(score)


@pytest.mark.slow
def test_wrong_or_missing_token_is_one_line(head, monkeypatch, tmp_path, capsys):
    for k in list(os.environ):
        if k.startswith("RAY_AUTH"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    assert cli.main(["status", "--address", head.address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "requires a token" in err[0], err

    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    assert cli.main(["status", "--address", head.address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rejected the token from RAY_AUTH_TOKEN" in err[0], err


# ---- without a cluster --------------------------------------------------------------------
def test_unreachable_cluster_is_one_line(capsys, tmp_path):
    (port,) = _free_ports(1)
    rc = cli.main(
        ["submit", "--address", f"127.0.0.1:{port}", "--storage", str(tmp_path), "--trials", "1"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot reach the Ray job server" in err[0], err


def test_entrypoint_names_its_interpreter():
    ep = jobs._entrypoint("/opt/py env/bin/python", ["--sync", "s3://b/r"], ["run", "--x"])
    assert (
        "exec '/opt/py env/bin/python' -m takd_search.cluster job --sync s3://b/r -- run --x" in ep
    )
    assert ep.startswith("test -x '/opt/py env/bin/python' ||")
