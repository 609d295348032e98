"""The web service: merchant API under /api/v1, ops dashboard, /metrics, /health.

`rebill web` serves `create_app(...)` with waitress. See web.app for the pieces.
"""
