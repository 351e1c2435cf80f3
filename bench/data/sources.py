"""The one registry of data sources: the name a suite file gives as `source` -> its `Source`.

Procedural sources (drawn from the suite's seed, no download) and layouts of real data sets on disk
register the same way; loaded splits are kept for the life of the process, since a cell's stages ask
for the same split more than once.
"""

from __future__ import annotations

from bench.cache import stable_hash
from bench.data import busi, camvid, dsb2018, folders, synthetic_nuclei, synthetic_scenes
from bench.data.request import SPLITS, DataRequest, Source, SplitData
from bench.errors import UsageError, unknown_name

SOURCES: dict[str, Source] = {
    "synthetic-nuclei": synthetic_nuclei.SOURCE,
    "synthetic-scenes": synthetic_scenes.SOURCE,
    "dsb2018": dsb2018.SOURCE,
    "camvid": camvid.SOURCE,
    "busi": busi.SOURCE,
    "folders": folders.SOURCE,
}

_LOADED: dict[tuple[str, str], SplitData] = {}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise unknown_name("suite source", name, list(SOURCES))
    return SOURCES[name]


def load_split(request: DataRequest, split: str) -> SplitData:
    """One split of the data, decoded (or generated) once per process."""
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
    key = (stable_hash(request.config()), split)
    if key not in _LOADED:
        _LOADED[key] = get_source(request.source).load(request, split)
    return _LOADED[key]
