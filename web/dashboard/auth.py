"""Operator sign-in and sign-out, with Flask-Login sessions."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import UserMixin, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from models import Operator
from web.app import db, now
from web.dashboard import dashboard, login_manager
from web.operators import authenticate

logger = logging.getLogger(__name__)


class SignedInOperator(UserMixin):
    """The operator of the current session, as Flask-Login expects it."""

    def __init__(self, operator: Operator) -> None:
        self.id = operator.id
        self.username = operator.username

    def get_id(self) -> str:
        return str(self.id)


@login_manager.user_loader
def load_operator(operator_id: str) -> SignedInOperator | None:
    if not operator_id.isdigit():
        return None
    operator = db().get(Operator, int(operator_id))
    if operator is None or operator.disabled:
        return None
    return SignedInOperator(operator)


class SignInForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


# NOTE: failed sign-ins are logged but not throttled; put the dashboard behind a
# proxy that rate-limits POST /login if it is reachable from the internet.
@dashboard.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    form = SignInForm()
    if form.validate_on_submit():
        username = form.username.data or ""
        operator = authenticate(db(), username, form.password.data or "", now())
        if operator is not None:
            db().commit()
            session.clear()
            session.permanent = True
            login_user(SignedInOperator(operator))
            logger.info("operator %s signed in", operator.username)
            return redirect(_safe_next(request.args.get("next")))
        logger.warning("dashboard sign-in failed for username %r", username[:100])
        flash("Invalid username or password.", "error")
    return render_template("login.html", form=form)


@dashboard.post("/logout")
@login_required
def logout() -> Response:
    logout_user()
    session.clear()
    return redirect(url_for("dashboard.login"))


def _safe_next(target: str | None) -> str:
    """Return a same-site path to go to after sign-in, never another host."""
    if not target:
        return url_for("dashboard.overview")
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
    ):
        return url_for("dashboard.overview")
    return target
