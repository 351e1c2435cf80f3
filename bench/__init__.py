"""segbench core: suites, models, backend protocol, timing, metrics, runner and reports."""

__version__ = "0.1.0"
