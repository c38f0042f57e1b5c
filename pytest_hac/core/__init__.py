"""The library core: cases, the engine, results, statistics, soundness, gates and the run."""
