"""Reports of a run folder: the summary table (Markdown and terminal), the self-contained HTML page,
figures, and the comparison of two runs."""
