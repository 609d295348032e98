"""Logging set-up for the entry points; library modules only get loggers."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 logs full request lines at DEBUG; keep it at INFO so no query or
    # header detail of a BigCommerce call is logged outside rebill.client.
    logging.getLogger("urllib3").setLevel(logging.INFO)
