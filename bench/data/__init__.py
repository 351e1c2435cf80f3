"""Data: suites (TOML files) and the sources that produce their seeded splits.

`suite` reads and checks suite files; `sources` is the registry of data sources, each a module here
(procedural generators and layouts of real data sets on disk) that is given a small `DataRequest`
and returns `SplitData`; `files`, `images` and `splits` are what the file layouts share.
"""
