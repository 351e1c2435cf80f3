"""Timing the cells of one group (suite, model, device, batch size) in rounds.

Interleaved (the default): every cell's session is loaded in its own worker first; then, round after
round, each cell in turn (in a shuffled order per round, seeded, so no backend always follows the same
one) times a short round, until every cell has its minimum time and count. A burst of load or a drift
of the machine's speed then lands on every backend of the group alike, and the ratios between them,
which is what a user compares, survive it. Sequential: one cell at a time, one long round each.

Before every round the run's reference kernel is timed, and each round's CPU accounting goes to its
cell, so every row says how quiet (and how fast) the machine was while it was measured.
"""

from __future__ import annotations

import random

from bench.measure.contention import ReferenceKernel
from bench.run.cell import CellOutcome, MeasuringCell

SHUFFLE_SEED = 0


def time_cells(cells: list[MeasuringCell], kernel: ReferenceKernel) -> list[CellOutcome]:
    """Time the cells in rounds until each has its minimum, then evaluate each: one outcome per cell."""
    order = random.Random(SHUFFLE_SEED)
    while active := [cell for cell in cells if cell.needs_more]:
        order.shuffle(active)
        for cell in active:
            cell.time_round(kernel)
    return [cell.finish() for cell in cells]
