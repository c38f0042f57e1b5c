"""What a cell is: cases from markers, cell ids, the defense and its gradient paths, what a cell depends on.
No torch (``tests/unit/test_layers.py``)."""
