"""The web console at /ui/: server-rendered pages over the same queries and the same replay
path as /v1 (never a second way into the data), behind a session signed in with an API token.

`routers` in the order they are included: the catch-all last.
"""

from __future__ import annotations

from app.console import auth, deliveries, fallback, jobs, overview

routers = (auth.router, overview.router, jobs.router, deliveries.router, fallback.router)
