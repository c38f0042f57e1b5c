"""GitHub Actions' job summary: the report appended to ``$GITHUB_STEP_SUMMARY``, never failing the job."""
from __future__ import annotations

import os

STEP_SUMMARY_LIMIT = 1 << 20  # GitHub rejects step summaries over 1 MiB


def append_step_summary(text: str) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` when set; never fails the job (size capped at 1 MiB)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    data = text.encode("utf-8")
    if len(data) > STEP_SUMMARY_LIMIT - 1024:
        data = data[: STEP_SUMMARY_LIMIT - 1024].decode("utf-8", "ignore").encode() + b"\n\n(truncated)\n"
    try:
        with open(target, "ab") as fh:
            fh.write(data)
    except OSError:
        pass
