"""The library core in three rooms: ``cells`` (what a cell is), ``judge`` (how it is decided) and ``engine`` (how it is
measured); nothing else lives at this level (``tests/unit/test_layers.py``)."""
