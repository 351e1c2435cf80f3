"""`segbench tune`: which layers break int8, and the fastest mixed-precision model that meets a quality budget.

`budget` (the quality budgets), `config` (what the command asked for, checked before any work), `store`
(the tune folder: every finished layer and step on disk at once, for `--resume`), `records` (the rows
it writes, each naming its columns), `variants` (one variant = one cell on the tuning split),
`sensitivity` (each layer alone in float), `fallback` (the greedy fallback and its confirmation), `peer`
(the runtime's own accuracy control beside it), `calibration` (how many calibration images, which
method), `work` (what a worker does beyond a cell's stages), `runner` (the order), `across` (several
backends tuned, then decided together).
"""
