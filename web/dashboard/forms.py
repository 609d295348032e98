"""Forms of the dashboard; every action form carries a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length


class ActionForm(FlaskForm):
    """An action button with an optional note kept in the audit entry."""

    note = StringField("Note", validators=[Length(max=500)])
