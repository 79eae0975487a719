"""`python -m takd_search.cluster job [--sync URI] -- run ...`: the job's entry point on
the head node (the command `submit` puts in the job's entrypoint). It is the top of its
own program, so it may import the CLI, whose `main` the driver runs the job's command
line with (cluster/driver.py does not import the CLI: cli -> cluster stays one way)."""

import sys


def main() -> int:
    # the CLI sits above cluster/ and imports it: imported here, at the top of the program
    from takd_search.cli import fail
    from takd_search.cli import main as cli_main
    from takd_search.cluster.driver import job_main
    from takd_search.errors import UserError

    if sys.argv[1:2] != ["job"]:
        raise SystemExit("usage: python -m takd_search.cluster job [--sync URI] -- run ...")
    try:
        return job_main(sys.argv[2:], cli_main)
    except UserError as e:  # e.g. --sync URI unreachable from the head
        return fail(str(e))


if __name__ == "__main__":
    raise SystemExit(main())
