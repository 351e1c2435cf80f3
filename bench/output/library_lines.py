"""What the capture put into a run's logs/, read back and counted by source: the run's one end line.

The count is of what was captured, never an estimate: every warning and log record the capture wrote
(`[warning] source: ...`, `[log LEVEL] source: ...`, its indented further lines not counted apart), and
every other non-empty line that reached descriptors 1 and 2 (C/C++ writes, libraries' own handlers,
progress bars: a bar redrawn with carriage returns is one line). Lines in the formats other loggers
write (torch's C++ `[W1206 ... Quantizer.cpp:111] ...`, torch's Python `W1206 ... torch/utils/_pytree.py:630]
...`, logging's default `WARNING:nncf:...`) are attributed to their source; the rest to `output`.
segbench's own traceback entries (`bench.output.capture.traceback_entry`) and its own progress lines
(`[segbench HH:MM:SS] ...`) are left out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from bench.output.capture import TRACEBACK_END

RECORD = re.compile(r"^\[(?:warning|log [A-Z]+)\] (?P<source>\S+?): (?P<message>.*)$")
OWN_LINE = re.compile(r"^\[segbench \d\d:\d\d:\d\d\] ")  # segbench's own line in the run log (capture.OWN_LINE)
TRACEBACK_START = re.compile(r"^--- \d{4}-\d\d-\d\d \d\d:\d\d:\d\d pid \d+$")
# glog-style lines: torch's C++ (c10) `[W1206 04:00:01.123456 123 Quantizer.cpp:111] ...` and torch._logging's
# `W1206 04:00:01.123000 123 torch/utils/_pytree.py:630] ...`
GLOG = re.compile(r"^\[?[DIWEFC]\d{4} [\d:.]+ (?:\d+ )?(?P<file>[^\s\]]+?):\d+\] (?P<message>.*)$")
DEFAULT_LOGGING = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):(?P<source>[^:\s]+):(?P<message>.*)$")
PYTHON_WARNING = re.compile(r"^(?P<file>\S+\.py):\d+: (?P<message>\w+: .*)$")  # warnings' own format
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BARS = re.compile(r"[\u2500-\u259f]+")  # box drawing and block elements: the bar of a progress bar
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def log_sizes(folder: Path) -> dict[str, int]:
    """The size of every log file in `folder`: where a resumed run's counting starts."""
    return {path.name: path.stat().st_size for path in sorted(folder.glob("*.log"))} if folder.is_dir() else {}


def count_library_lines(folder: Path, since: Mapping[str, int] | None = None) -> Counter[tuple[str, str]]:
    """(source, message pattern) -> how many times the capture wrote it into `folder`'s log files, past
    `since` (`log_sizes` taken before the run, for a resumed run)."""
    counts: Counter[tuple[str, str]] = Counter()
    for path in sorted(folder.glob("*.log")) if folder.is_dir() else ():
        with path.open("rb") as file:
            file.seek((since or {}).get(path.name, 0))
            counts.update(classify(file.read().decode("utf-8", "replace").split("\n")))
    return counts


def classify(lines: Iterable[str]) -> Iterable[tuple[str, str]]:
    """(source, message pattern) for each counted line of one log file's text."""
    in_traceback = follows_record = False
    for raw in lines:
        line = ANSI.sub("", _last_redraw(raw)).rstrip()
        if in_traceback:
            in_traceback = line != TRACEBACK_END and not TRACEBACK_START.match(line)
            if in_traceback or line == TRACEBACK_END:
                continue
        if TRACEBACK_START.match(line):
            in_traceback = True
            continue
        if not line.strip() or OWN_LINE.match(line):
            follows_record = False
            continue
        if follows_record and line.startswith(" "):
            continue  # a further line of the record above (capture.CONTINUATION; warnings' own: the source line)
        source, message, follows_record = _attribute(line)
        yield source, pattern(message)


def _attribute(line: str) -> tuple[str, str, bool]:
    """(source, message, whether indented lines after it belong to it)."""
    if match := RECORD.match(line):
        return match["source"], match["message"], True
    if match := GLOG.match(line):
        file = match["file"]
        source = file.removesuffix(".py").replace("/", ".") if file.endswith(".py") else file
        return source, match["message"], False
    if match := DEFAULT_LOGGING.match(line):
        return match["source"], match["message"], False
    if match := PYTHON_WARNING.match(line):
        return Path(match["file"]).stem, match["message"], True
    return "output", line.strip(), False


def _last_redraw(line: str) -> str:
    """A line redrawn with carriage returns (a progress bar) as it was left."""
    parts = [part for part in line.split("\r") if part.strip()]
    return parts[-1] if parts else ""


def pattern(message: str, width: int = 60) -> str:
    """A message with its particulars masked (quoted names, numbers, the bar of a progress bar), so that
    the same warning about different layers counts as one kind."""
    text = NUMBER.sub("N", QUOTED.sub("'…'", BARS.sub("", message)))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def short_source(source: str) -> str:
    """`onnxruntime.quantization.qdq_quantizer` -> `onnxruntime.quantization`: the package speaks."""
    return ".".join(source.split(".")[:2])


def library_summary(folder: Path, since: Mapping[str, int] | None = None, most: int = 3) -> str:
    """One end-of-run line: how many library lines the capture put into `folder` and the commonest kinds;
    "" when there were none."""
    counts = count_library_lines(folder, since)
    total = sum(counts.values())
    if not total:
        return ""
    kinds: Counter[tuple[str, str]] = Counter()
    for (source, message), n in counts.items():
        kinds[(short_source(source), message)] += n
    top = "; ".join(f"{n} {source} '{message}'" for (source, message), n in kinds.most_common(most))
    noun = "line" if total == 1 else "lines"
    return f"{total} library {noun} (warnings, log records, progress bars) in {folder}/ (most: {top})"
