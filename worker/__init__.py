"""Celery workers that charge renewals: `celery -A worker worker`."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Built on first use so that importing worker.renewal in a test or the
    # scheduler does not require a configured broker.
    if name in ("app", "celery"):
        from worker.app import make_worker_app

        app = make_worker_app()
        globals()["app"] = globals()["celery"] = app
        return app
    raise AttributeError(name)
