"""segbench core: suites, models, backend protocol, timing, metrics, runner and reports."""

__version__ = "0.1.0"  # the only place: pyproject.toml reads it (dynamic), `segbench --version` prints it
