"""Suite definitions: one TOML file per suite (data source, classes, splits, normalization)."""
