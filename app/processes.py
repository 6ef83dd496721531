"""Where stemhook's own processes come from: a fork server that has imported what they run.

The writer processes and the background process (app/ingest/writer.py, app/background.py) fork
from it, so a start costs milliseconds, not an interpreter importing the stack again (a
writer that died is replaced at once), and the imported code's memory is shared.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import ForkServerContext

_PRELOADED = ["app.ingest.writer_process", "app.background"]


def processes() -> ForkServerContext:
    """The context to start a process from; the fork server starts with the first process."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOADED)
    return context
