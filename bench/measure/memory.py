"""Peak resident memory of the current process, resettable so set-up does not count.

Linux keeps the high-water mark in /proc/self/status (VmHWM) and resets it when "5" is written to
/proc/self/clear_refs; after a reset the peak belongs to what ran since. Where that is not possible,
`getrusage` gives the whole-process peak, and the method column says so.
"""

from __future__ import annotations

import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> str:
    """Reset the high-water mark; returns the method the next `peak_rss_mib` reading will use."""
    try:
        _CLEAR_REFS.write_text("5")
        return "VmHWM-after-reset"
    except OSError:
        return "ru_maxrss-whole-process"


def peak_rss_mib() -> float:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
