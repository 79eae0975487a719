"""`python -m takd_search.cluster job [--sync URI] -- run ...`: the job's entry point on
the head node (the command `submit` puts in the job's entrypoint)."""

import sys

from takd_search.cluster.driver import job_main
from takd_search.errors import UserError


def main() -> int:
    if sys.argv[1:2] != ["job"]:
        raise SystemExit("usage: python -m takd_search.cluster job [--sync URI] -- run ...")
    try:
        return job_main(sys.argv[2:])
    except UserError as e:  # e.g. --sync URI unreachable from the head
        # the CLI's one-line error format; cli sits above cluster, so imported only here
        from takd_search.cli import _fail

        return _fail(str(e))


if __name__ == "__main__":
    raise SystemExit(main())
