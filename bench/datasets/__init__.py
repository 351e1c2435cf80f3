"""Loaders for real data sets on disk, one module per layout (registered in `bench.suite.LOADERS`).

Each layout only says which files make up a split (`list_items`) and how to decode one pair
(`read_item`); `base.FileDataset` does the rest the same way for all of them: stacking, checking
and an on-disk cache, so a benchmark cell that starts in a fresh process does not decode thousands
of PNGs again.
"""
