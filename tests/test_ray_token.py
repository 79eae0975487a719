"""ray_token.py: the cluster's token is looked up where Ray's own loader looks."""

from __future__ import annotations

import os

import pytest

from takd_search import ray_token
from takd_search.errors import UserError


def test_token_is_read_where_ray_reads_it(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith("RAY_AUTH"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ray_token.read_token()[0] is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("home-token\n")
    assert ray_token.read_token() == ("home-token", str(tmp_path / ".ray" / "auth_token"))
    (tmp_path / "t").write_text("path-token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "t"))
    assert ray_token.read_token()[0] == "path-token"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "env-token")
    assert ray_token.read_token()[0] == "env-token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert ray_token.read_token()[0] is None
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(UserError, match="cannot be read"):
        ray_token.read_token()
