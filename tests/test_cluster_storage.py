"""cluster/storage.py: --storage kinds and the copy in and out used for URI storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from takd_search.cluster import driver, storage
from takd_search.errors import UserError


def test_storage_must_be_absolute_or_a_uri(tmp_path):
    with pytest.raises(UserError, match="not absolute"):
        storage.storage_kind("results/here")
    assert storage.storage_kind(str(tmp_path)) == "path"
    assert storage.storage_kind(f"file://{tmp_path}") == "uri"


def test_uri_storage_round_trip(tmp_path):
    """The copy in/out used for URI storage (file:// stands in for s3:// here)."""
    src = tmp_path / "run"
    (src / "a" / "tune").mkdir(parents=True)
    (src / "a" / "state.json").write_text("{}")
    (src / "a" / "tune" / "x.json").write_text("[1]")
    (src / "a" / "ray_logs").symlink_to(tmp_path, target_is_directory=True)  # not copied
    uri = f"file://{tmp_path / 'bucket' / 'results'}"
    assert storage.upload(src, uri) == 2
    back = tmp_path / "back"
    assert storage.download(uri, back) == 2
    assert (back / "a" / "tune" / "x.json").read_text() == "[1]"
    assert storage.download(f"file://{tmp_path / 'nothing'}", tmp_path / "n") == 0


def _hop(store, key: str, weights: bytes) -> None:
    entry = store / "hops" / key
    entry.mkdir(parents=True)
    (entry / "meta.json").write_text(json.dumps({"lineage": {"model": "plain2"}}))
    (entry / "weights.pt").write_bytes(weights)


NAMED, OTHER = "a" * 32, "b" * 32  # hop keys are 32 hex digits


def test_a_uri_job_uploads_the_hops_its_run_folders_name(tmp_path):
    """The driver with --sync/--sync-store (file:// standing in for s3://): the run
    folders go to URI/results and the store entries they name to URI/store/hops, so
    `export` works on pulled results; a fresh head gets them back for a resume."""
    bucket = tmp_path / "bucket"
    calls = []

    def fake_run(argv):  # what `takd-search run` leaves: a run folder naming one hop
        calls.append(argv)
        results = Path(argv[argv.index("--results") + 1])
        store = Path(argv[argv.index("--store") + 1])
        run = results / "digits-1"
        (run / "phases").mkdir(parents=True, exist_ok=True)
        (run / "phases" / "nokd.json").write_text(json.dumps([{"hops": [{"key": NAMED}]}]))
        if not (store / "hops" / NAMED).exists():
            _hop(store, NAMED, b"w" * 1000)
            _hop(store, OTHER, b"x" * 5000)  # trained on the head, named by no run folder
        return 0

    job = ["--sync", f"file://{bucket}/results", "--sync-store", f"file://{bucket}/store"]
    argv = [*job, "--scratch", str(tmp_path / "head1"), "--", "run", "--space", "s.yaml"]
    assert driver.job_main(argv, fake_run) == 0
    assert (bucket / "results" / "digits-1" / "phases" / "nokd.json").exists()
    assert sorted(p.name for p in (bucket / "store" / "hops").iterdir()) == [NAMED]
    assert (bucket / "store" / "hops" / NAMED / "weights.pt").read_bytes() == b"w" * 1000
    assert storage.needed_hops(tmp_path / "head1" / "results", tmp_path / "head1" / "store") == [
        NAMED
    ]
    # a resubmission on a fresh head: the named hop comes back in before the run
    argv = [*job, "--scratch", str(tmp_path / "head2"), "--", "run", "--space", "s.yaml"]
    assert driver.job_main(argv, fake_run) == 0
    assert (tmp_path / "head2" / "store" / "hops" / NAMED / "weights.pt").stat().st_size == 1000
    assert not (tmp_path / "head2" / "store" / "hops" / OTHER).exists()
    assert calls[1][-4:] == ["--results", str(tmp_path / "head2" / "results"), "--store",
                             str(tmp_path / "head2" / "store")]  # fmt: skip


def test_submit_sends_the_store_to_the_uri_unless_one_is_named():
    from takd_search.cli import build_parser
    from takd_search.cluster import jobs

    a = build_parser().parse_args(["submit", "--storage", "s3://b/t"])
    job, run, results = jobs._storage_args(a, "uri")
    assert job == ["--sync", "s3://b/t/results", "--sync-store", "s3://b/t/store"]
    assert (run, results) == ([], "s3://b/t/results")
    a = build_parser().parse_args(["submit", "--storage", "s3://b/t", "--store", "/nfs/st"])
    assert jobs._storage_args(a, "uri")[:2] == (
        ["--sync", "s3://b/t/results"],
        ["--store", "/nfs/st"],
    )
    a = build_parser().parse_args(["submit", "--storage", "/nfs/t", "--resume", "r1"])
    assert jobs._storage_args(a, "path") == (
        [],
        [
            "--results",
            "/nfs/t/results",
            "--store",
            "/nfs/t/store",
            "--resume",
            "/nfs/t/results/r1",
        ],
        "/nfs/t/results",
    )
