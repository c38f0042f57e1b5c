"""The report of a run: its schema (also the baseline format), Markdown, plot, step summary, baselines on disk."""
