"""Forms of the dashboard; every action form carries a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Field, Form, StringField
from wtforms.validators import Length, ValidationError

from rebill.errors import InvalidInput
from rebill.validation import reject_control_characters


def no_control_characters(_form: Form, field: Field) -> None:
    """Reject control characters, as the checks of merchant input do.

    PostgreSQL cannot store NUL in the audit entry that keeps the note.
    """
    try:
        reject_control_characters(field.data or "", record="form", field=field.name)
    except InvalidInput as error:
        raise ValidationError(error.message) from None


class ActionForm(FlaskForm):
    """An action button with an optional note kept in the audit entry."""

    note = StringField("Note", validators=[Length(max=500), no_control_characters])
