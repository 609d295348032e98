"""The merchant API under /api/v1, authenticated by a store's API key.

Every request carries `Authorization: Bearer <key>`. A key can read and change
only its own store's rows: a subscription or renewal of another store gets a
404, exactly as one that does not exist.
"""

from __future__ import annotations

from flask import Blueprint

api = Blueprint("api", __name__, url_prefix="/api/v1")

# The modules below attach their routes and handlers to `api`.
from web.api import auth, imports, openapi, subscriptions  # noqa: E402, F401
