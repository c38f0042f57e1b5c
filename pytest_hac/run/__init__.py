"""A run without pytest: :class:`HacRun` (cells measured, decided, recorded; the report), its model, data
and engine (:mod:`.loaded`) and its files (:mod:`.files`)."""
from ..core.judge.result import GATE_RULES
from ..report.provenance import default_data, versions
from .hac_run import HacRun

__all__ = ["GATE_RULES", "HacRun", "default_data", "versions"]
