"""`python -m bench.cli`: the `segbench` command."""

from bench.cli.app import main

if __name__ == "__main__":
    raise SystemExit(main())
