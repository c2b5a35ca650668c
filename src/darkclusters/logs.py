"""Logging for workflow jobs: send warnings, log records and tracebacks to the rule's log file."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["log_to_file"]


def log_to_file(path: str | os.PathLike) -> None:
    """Redirect this process's stderr to ``path`` (line-buffered) and route ``logging`` (INFO and up) there.

    Called first thing by every ``workflow/scripts`` adapter, so a failing job's traceback lands in its log.
    """
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job's process
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
