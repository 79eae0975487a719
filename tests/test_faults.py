"""Fault tests: kill the driver, kill a worker, diverge, share a store, fill the disk.

Each runs the real CLI in a subprocess (real Ray on loopback, real Optuna, real files)
on a tiny digits search, bounded in time. Every process a test starts is killed by pid
(the driver's whole process tree), never with `ray stop`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

SPACE = """
data: {{dataset: digits}}
models: {{family: plain, teacher: 6, student: 2, candidates: [4], max_tas: 1}}
train: {{epochs: {epochs}, batch_size: 64{lr}}}
distill: {{T: {T}, alpha: {alpha}, kd_epochs: 1.0, parent_epoch: 1.0}}
search: {{n_trials: {trials}, seed: 0, sampler: {sampler}, max_failures: 1}}
resources: {{cpu: 1, concurrency: {concurrency}}}
baselines: {{confirm_top_k: 1, confirm_seeds: [1], blkd_trials: {blkd}}}
"""


def space_file(
    tmp_path,
    name="tiny",
    epochs=3,
    trials=4,
    sampler="tpe",
    lr="",
    concurrency=1,
    T="[2.0, 8.0]",
    alpha="[0.3, 0.7]",
    blkd=1,
) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(
        SPACE.format(
            epochs=epochs,
            trials=trials,
            sampler=sampler,
            lr=lr,
            concurrency=concurrency,
            T=T,
            alpha=alpha,
            blkd=blkd,
        )
    )
    return p


def env(**extra) -> dict:
    e = {**os.environ, "PYTHONUNBUFFERED": "1", "TAKD_CHECKPOINT_S": "0", **extra}
    e.pop("TAKD_STORE", None)
    return e


def start(args, log: Path, **extra_env) -> subprocess.Popen:
    """The CLI in its own session (so its whole tree can be signalled), stderr to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "takd_search.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),
        text=True,
        env=env(**extra_env),
        start_new_session=True,
    )


def run(args, timeout=600, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "takd_search.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(**extra_env),
    )


def wait_for(log: Path, text: str, proc: subprocess.Popen, timeout=300) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if text in log.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"driver exited {proc.returncode} before {text!r}:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not seen in {timeout} s:\n{log.read_text()[-3000:]}")


def tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out[::-1]


def kill_tree(pid: int, sig=signal.SIGKILL) -> None:
    for p in tree(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:  # nothing outlives a test
        kill_tree(p.pid)
        p.wait(timeout=30)


def the_run(results: Path) -> Path:
    (run_dir,) = [d for d in results.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return run_dir


def finished_trials(run_dir: Path, phase="search") -> set[str]:
    """Trial ids that Tune's last experiment snapshot holds as finished."""
    import json

    out = set()
    for state in (run_dir / "tune" / phase).glob("experiment_state-*.json"):
        for trial, meta in json.loads(state.read_text())["trial_data"]:
            trial, meta = json.loads(trial), json.loads(meta)
            if trial["status"] == "TERMINATED" and (meta["last_result"] or {}).get("finished"):
                out.add(trial["trial_id"])
    return out


def trained_keys(store: Path) -> list[str]:
    log = store / "trained.log"
    return [ln.split()[1] for ln in log.read_text().splitlines()] if log.exists() else []


def test_sigkill_then_same_command_completes_without_retraining(tmp_path, procs):
    space, res = space_file(tmp_path), tmp_path / "results"
    args = ["run", "--space", space, "--results", res]
    log = tmp_path / "first.log"
    procs.append(p := start(args, log))
    wait_for(log, "[search] 2/4 done", p)
    time.sleep(3)  # past one experiment snapshot (TUNE_GLOBAL_CHECKPOINT_S=2)
    kill_tree(p.pid)
    p.wait(timeout=30)
    run_dir = the_run(res)
    before = finished_trials(run_dir)
    keys_before = trained_keys(res / ".store")
    assert len(before) >= 2 and keys_before

    again = run(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming the unfinished run {run_dir}" in again.stderr
    trials = pd.read_csv(run_dir / "trials.csv")
    search = trials[trials.phase == "search"]
    assert len(search) == 4 and search.trial_id.is_unique
    assert before <= set(search.trial_id)
    assert (search.status == "completed").all()
    keys = trained_keys(res / ".store")
    assert len(keys) == len(set(keys)), "a hop was trained twice"
    assert keys[: len(keys_before)] == keys_before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_sigint_and_sigterm_stop_cleanly_and_resume(sig, tmp_path, procs):
    space, res = space_file(tmp_path), tmp_path / "results"
    args = ["run", "--space", space, "--results", res]
    log = tmp_path / "first.log"
    procs.append(p := start(args, log))
    wait_for(log, "[search] 1/4 done", p)
    t0 = time.time()
    if sig == signal.SIGINT:
        os.killpg(p.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    else:
        p.send_signal(signal.SIGTERM)
    code = p.wait(timeout=60)
    stopped_in = time.time() - t0
    err = log.read_text()
    assert code == 130, err[-3000:]
    assert stopped_in < 30
    assert "Resume with the same command" in err
    assert "Traceback" not in err
    run_dir = the_run(res)
    assert '"interrupted"' in (run_dir / "state.json").read_text()

    again = run(args)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = pd.read_csv(run_dir / "trials.csv")
    search = trials[trials.phase == "search"]
    assert len(search) == 4 and search.trial_id.is_unique
    assert (search.status == "completed").all()
    assert (run_dir / "summary.json").exists()


def test_dead_worker_is_retried_from_its_checkpoint(tmp_path):
    space, res = space_file(tmp_path, epochs=4), tmp_path / "results"
    marker = tmp_path / "worker-died"
    r = run(["run", "--space", space, "--results", res], TAKD_FAULT_WORKER_EXIT=str(marker))
    assert r.returncode == 0, r.stderr[-3000:]
    assert marker.exists()  # the fault was injected
    run_dir = the_run(res)
    trials = pd.read_csv(run_dir / "trials.csv")
    conf = pd.read_csv(run_dir / "confirmation.csv")
    assert (trials.status == "completed").all() and (conf.status == "completed").all()
    # the NoKD phase runs first: its first student to reach epoch 2 died once
    import json

    nokd = json.loads((run_dir / "phases" / "nokd.json").read_text())
    assert sorted(r["retries"] for r in nokd) == [0, 0, 1]
    base = pd.read_csv(run_dir / "baselines.csv")
    assert base.note.fillna("").str.contains("retried").sum() == 1
    keys = trained_keys(res / ".store")
    assert len(keys) == len(set(keys))


def test_a_diverging_trial_fails_with_its_reason_and_the_search_goes_on(tmp_path):
    # a grid of 2 paths x 2 learning rates, every point once; BLKD: both rates
    space = space_file(
        tmp_path, trials=4, sampler="grid", lr=", lr: [0.05, 50.0]", T="4.0", alpha="0.5", blkd=2
    )
    res = tmp_path / "results"
    r = run(["run", "--space", space, "--results", res])
    assert r.returncode == 0, r.stderr[-3000:]
    trials = pd.read_csv(the_run(res) / "trials.csv")
    search = trials[trials.phase == "search"]
    failed, ok = search[search.lr == 50.0], search[search.lr == 0.05]
    assert len(failed) >= 1 and len(ok) >= 1
    assert (failed.status == "failed").all()
    assert failed.error.str.contains("the loss diverged").all()
    assert failed.error.str.contains("lower the learning rate").all()
    assert (ok.status == "completed").all()
    assert "failed: " in r.stderr and "Traceback" not in r.stderr


def test_two_searches_sharing_a_store_train_each_hop_once(tmp_path, procs):
    store = tmp_path / "shared-store"
    logs = []
    for i in (1, 2):
        space = space_file(tmp_path, name=f"s{i}", trials=3)
        log = tmp_path / f"s{i}.log"
        procs.append(
            start(
                ["run", "--space", space, "--results", tmp_path / f"r{i}", "--store", store], log
            )
        )
        logs.append(log)
    for p, log in zip(procs, logs):
        assert p.wait(timeout=900) == 0, log.read_text()[-3000:]
    keys = trained_keys(store)
    assert len(keys) == len(set(keys)), "a hop was trained by both searches"
    a = pd.read_csv(the_run(tmp_path / "r1") / "baselines.csv")
    b = pd.read_csv(the_run(tmp_path / "r2") / "baselines.csv")
    nokd = lambda df: df[df.kind == "nokd"].set_index("model").val_acc  # noqa: E731
    assert nokd(a).equals(nokd(b))  # same hops, loaded rather than retrained


def test_unwritable_results_folder_is_one_line_before_training(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the results folder should be")
    r = run(["run", "--space", space_file(tmp_path), "--results", blocker / "results"])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write to the results folder" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_store_is_one_line_before_anything_is_written(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the hop store should be")
    res = tmp_path / "results"
    r = run(["run", "--space", space_file(tmp_path), "--results", res, "--store", blocker / "s"])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write to the hop store" in lines[0], r.stderr
    assert "--no-store" in lines[0] and "Traceback" not in r.stderr
    assert not any(p.is_dir() and p.name != ".store" for p in res.glob("*"))  # no run folder


def test_full_disk_is_one_line_before_training(tmp_path):
    """A 2 kB file-size limit stands in for a full disk: writes fail with EFBIG."""
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    space = space_file(tmp_path)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "takd_search.cli",
            "run",
            "--space",
            str(space),
            "--results",
            str(tmp_path / "results"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env(),
        preexec_fn=small_files,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write to the results folder" in lines[0], r.stderr
    assert "free space" in lines[0]
    assert not any((tmp_path / "results").glob("tiny-*"))
