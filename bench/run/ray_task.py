"""`python -m bench.run.ray_task CONFIG_DIR OUT`: one comparison group's sub-run on a Ray node.

Started by the Ray task (`bench.run.ray_executor.run_group_on_node`) as a fresh process, so the group runs
exactly as a local `segbench run` would (its own worker processes, timing and columns) and a crash in it
is that process's, not the Ray worker's. Nothing imports this module.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from bench.errors import UsageError
from bench.run.config import load_run_config
from bench.run.runner import run_benchmark


def main(config_dir: Path, out: Path) -> int:
    """The group's sub-run, on the node, into OUT; 2 on a usage error (one line, as `segbench run` prints it)."""
    config = replace(load_run_config(config_dir), results_root=out)
    try:
        run_benchmark(config, log=lambda message: print(message, file=sys.stderr, flush=True))
    except UsageError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2])))
