"""The ops dashboard: server-rendered pages behind an operator sign-in.

Pages: overview (/), failures (/failures), a renewal's timeline
(/renewals/<id>), stores with limiter and queue health (/stores) and the
audit log (/audit). Every action is a POST form carrying a CSRF token, and
writes an audit entry whether or not it changed anything.
"""

from __future__ import annotations

from flask import Blueprint
from flask_login import LoginManager

dashboard = Blueprint("dashboard", __name__, template_folder="../templates")
login_manager = LoginManager()
login_manager.login_view = "dashboard.login"
login_manager.login_message = "Sign in to see this page."
login_manager.session_protection = "strong"

from web.dashboard import actions, auth, pages  # noqa: E402, F401
