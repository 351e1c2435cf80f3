"""The terminal segbench's own lines are written to (progress, the training bar, end-of-run summaries).

While a command captures third-party output (`bench.output.capture`), file descriptor 2 and
`sys.stderr` lead to a log file, so that every library's writes land there whatever way they take;
segbench's own lines must then go elsewhere: to a copy of the descriptor the process started with.
Outside a capture that is simply `sys.stderr`.
"""

from __future__ import annotations

import sys
from typing import TextIO

_terminal: TextIO | None = None


def terminal() -> TextIO:
    """Where segbench's own lines go now: the original stderr, also while fd 2 is captured."""
    return _terminal if _terminal is not None else sys.stderr


def use_terminal(stream: TextIO | None) -> None:
    """Set (a stream on the saved original fd 2) or clear (None: back to `sys.stderr`) the terminal;
    called by the capture when it starts and stops."""
    global _terminal
    _terminal = stream
