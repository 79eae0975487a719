"""cluster/storage.py: --storage kinds and the copy in and out used for URI storage."""

from __future__ import annotations

import pytest

from takd_search.cluster import storage
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
