"""How a cell is decided: results, statistics, diagnostics, soundness checks, gates, thresholds and the
verdict. No torch (``tests/unit/test_layers.py``)."""
