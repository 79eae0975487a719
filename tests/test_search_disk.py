"""A full disk, recognised and said in one line (takd_search/search/disk.py); the full-disk
runs themselves are in test_faults.py."""


def test_a_full_disk_is_recognised_through_causes_and_named_with_its_fix(tmp_path):
    """The recognition behind the full-disk line: an ENOSPC raised under another error (Ray
    wraps a trial's), a trial's error text, and not an unrelated OSError. The line names
    the disk with the least free space among those given, and the fix."""
    import errno

    from takd_search.search import disk

    full = OSError(errno.ENOSPC, "No space left on device", "x")
    try:
        try:
            raise full
        except OSError as inner:
            raise RuntimeError("trial failed") from inner
    except RuntimeError as wrapped:
        assert disk.is_disk_full(wrapped)
    assert disk.is_disk_full("OSError: [Errno 28] No space left on device: 'w.pt'")
    assert not disk.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk.is_disk_full("ValueError: bad config")
    line = disk.full_message([tmp_path, None], "writing results")
    assert line.startswith(f"the disk holding {tmp_path} is full (") and "MB free" in line
    assert "during writing results" in line and "run the same command again" in line
