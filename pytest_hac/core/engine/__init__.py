"""How a cell is measured: the engine, its passes, store keys, chunks, probes and costs (torch)."""
