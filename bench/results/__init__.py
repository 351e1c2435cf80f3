"""Results: the row a cell becomes, and the run folder its tables are written to."""
