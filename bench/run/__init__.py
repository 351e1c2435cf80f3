"""Running the benchmark: the run's configuration, the matrix of cells, process isolation, each cell's
stages and the typed records they return, and the runner that turns them into rows."""
