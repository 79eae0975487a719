"""`python -m takd_search ...` is `takd-search ...` (the same CLI, for a Python with the
package but without the script on PATH, such as a Ray job's interpreter)."""

from takd_search.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
