"""``--hac-update-thresholds``: a thresholds file written from a measured run ("record now, gate from now on").

Each cell's threshold is its measured accuracy minus a margin, rounded down to two decimals. The rule
follows what is random between the recording run and the runs it gates: on the same images with the same
seeds nothing is (a CPU rerun is bit-identical; a GPU's non-deterministic kernels may flip an image or
two), so the margin is a small slack for the device, not a confidence interval: a rerun passes and a
regression of a few points fails. Another sample of images varies by its interval: that is the gate
rule's business (``--hac-gate=lenient``), not the threshold's. A cell measured at (about) 0 gets no
threshold: 0 gates nothing and would turn "measured" into "passed". The file is
edited as text, not rewritten: other models' tables, the ``["*"]`` table, comments and hand-written
patterns stay as they are; a cell's exact entry in the model's table gets its new value (its comment
kept), a new one is added at the end of the table, after the patterns, so it wins over them
(:meth:`~.gates.Thresholds.lookup` takes the last match). The result is read back with ``tomllib``
and must hold every value written.
"""
from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

from ...errors import HacError
from ...formats import toml_key
from ...io.files import atomic_write

#: The first lines of a file this creates.
HEADER = ("# pytest-hac thresholds ([model] \"cell\" = minimum accuracy), see the README's \"Thresholds files\".\n"
          "# Entries written by --hac-update-thresholds: the cell's measured accuracy minus the margin, rounded down\n"
          "# to two decimals, for reruns on the same images and seeds (on another sample use --hac-gate=lenient).\n"
          "# Edit freely: comments and patterns are kept on the next update.\n")
_HEADER_LINE = re.compile(r"^\s*\[[^\[\]]+\]\s*(#.*)?$")
_VALUE = re.compile(r"^(?P<head>[^=]+=\s*)(?P<value>[-+0-9.eE_infa]+)(?P<tail>\s*(#.*)?)$")


def threshold_of(accuracy: float, margin: float) -> float | None:
    """``accuracy - margin`` rounded down to two decimals; None when that is 0 or less (it would gate nothing)."""
    value = math.floor((accuracy - margin) * 100 + 1e-9) / 100
    return value if value > 0 else None


def _header_name(line: str) -> str | None:
    """The table a ``[name]`` line opens (None for dotted or odd headers)."""
    if not _HEADER_LINE.match(line):
        return None
    try:
        parsed = tomllib.loads(line.strip())
    except tomllib.TOMLDecodeError:
        return None
    name = next(iter(parsed), None)
    return name if name is not None and parsed[name] == {} else None


def _entry_key(line: str) -> str | None:
    """The key of a one-line ``key = value`` entry (None for comments, blanks and anything else)."""
    if "=" not in line or line.lstrip().startswith("#"):
        return None
    try:
        parsed = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return None
    return next(iter(parsed)) if len(parsed) == 1 else None


def update_text(text: str, model: str, values: dict[str, float]) -> str:
    """``text`` (a thresholds file, maybe empty) with ``values`` (cell id -> threshold) in the ``[model]`` table."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _header_name(line) == model), None)
    if start is None:
        block = [f"[{toml_key(model)}]"] + [f"{toml_key(cell)} = {value:.2f}" for cell, value in values.items()]
        body = "\n".join(lines).rstrip("\n")
        return (body + "\n\n" if body else "") + "\n".join(block) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if _HEADER_LINE.match(lines[i])), len(lines))
    last, written = start, set()
    for i in range(start + 1, end):
        key = _entry_key(lines[i])
        if key is None:
            continue
        last = i
        if key in values:
            match = _VALUE.match(lines[i])
            if match is None:
                raise HacError(f"[{model}] {key!r}: cannot update its value in place ({lines[i].strip()!r}); write "
                               f"it as \"{key}\" = 0.5 on one line")
            lines[i] = f"{match['head']}{values[key]:.2f}{match['tail']}"
            written.add(key)
    added = [f"{toml_key(cell)} = {value:.2f}" for cell, value in values.items() if cell not in written]
    lines[last + 1:last + 1] = added
    return "\n".join(lines) + "\n"


def update_file(path: Path, model: str, values: dict[str, float]) -> list[str]:
    """Write ``values`` into the thresholds file ``path`` (created if missing), atomically; the lines written."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    except (OSError, UnicodeDecodeError) as exc:
        raise HacError(f"cannot read thresholds file {path} to update it: {exc}") from None
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HacError(f"thresholds file {path} is not valid TOML ({exc}): fix it before updating it") from None
    new = update_text(text, model, values)
    table = tomllib.loads(new).get(model, {})
    wrong = [cell for cell, value in values.items() if table.get(cell) != float(f"{value:.2f}")]
    if wrong:  # never leave a file that says something else than what the run reports it wrote
        raise HacError(f"updating {path} went wrong for {wrong}; nothing was written")
    atomic_write(path, new)
    return [f"[{model}] \"{cell}\" = {value:.2f}" for cell, value in values.items()]
