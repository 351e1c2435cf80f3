"""Reference models: recipes per (model, suite), the training loop, and the cached checkpoints."""
