"""Thin shim: `python cli.py ...` is the same as `takd-search ...`."""

from takd_search.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
