"""Files: atomic writes, the content-addressed cache, checkpoints, the report schema and its renderings."""
