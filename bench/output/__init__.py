"""Where text goes: segbench's own lines to the terminal, third-party output (warnings, log records,
progress bars, C/C++ writes) into the run's logs/ folder, counted at the end of a run."""
