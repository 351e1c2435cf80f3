"""The `segbench` command: parses, calls the library, prints. Library errors (UsageError) become one line
and exit 2.

One module per command group, the options they share defined once:
app.py (the parser, --version, main and the dispatch), options.py (value types, the option groups run
and tune share, the environment's defaults, the help formatter that shows defaults and examples),
run.py, tune.py, results.py (merge, report, compare, export, history) and models.py (list, train).
Handlers import the library inside themselves, so `segbench --help` stays fast.
"""

from bench.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
