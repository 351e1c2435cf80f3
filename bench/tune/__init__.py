"""`segbench tune`: which layers break int8, and the fastest mixed-precision model that meets a quality budget.

`budget` (the quality budgets), `config` (what the command asked for, checked before any work), `store`
(the tune folder: every finished layer and step on disk at once, for `--resume`), `variants` (one
variant = one cell on the tuning split), `sensitivity` (each layer alone in float), `search` (the
greedy fallback), `calibration` (how many calibration images, which method), `runner` (the order).
"""
