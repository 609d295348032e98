"""Error responses of the merchant API: {"message": ..., "errors": [...]}.

`errors` lists one object per invalid field, each with `field` and `message`,
and with `record` when the request carried several records (an import).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from rebill.errors import InvalidInput, InvalidInputFile, RebillError
from rebill.subscription_changes import InvalidFields, SubscriptionConflict

logger = logging.getLogger(__name__)


class ApiProblem(RebillError):
    """An error response with an HTTP status, raised by a view."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Sequence[InvalidInput] = (),
        *,
        with_record: bool = False,
    ) -> None:
        self.status = status
        self.message = message
        self.errors = list(errors)
        self.with_record = with_record
        super().__init__(message)


def field_errors(
    errors: Sequence[InvalidInput], *, with_record: bool
) -> list[dict[str, str]]:
    listed = []
    for error in errors:
        item = {"field": error.field, "message": error.message}
        if with_record:
            item = {"record": error.record, **item}
        listed.append(item)
    return listed


def problem_response(problem: ApiProblem) -> tuple[Response, int]:
    body = {
        "message": problem.message,
        "errors": field_errors(problem.errors, with_record=problem.with_record),
    }
    response = jsonify(body)
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="rebill"'
    return response, problem.status


def invalid(errors: Sequence[InvalidInput], *, with_record: bool = False) -> ApiProblem:
    count = len(errors)
    return ApiProblem(
        422,
        f"{count} invalid field(s); nothing was changed",
        errors,
        with_record=with_record,
    )


def handle_rebill_error(error: RebillError) -> tuple[Response, int]:
    if isinstance(error, ApiProblem):
        return problem_response(error)
    if isinstance(error, InvalidFields):
        return problem_response(invalid(error.errors))
    if isinstance(error, InvalidInputFile):
        return problem_response(invalid(error.errors, with_record=True))
    if isinstance(error, InvalidInput):
        return problem_response(invalid([error]))
    if isinstance(error, SubscriptionConflict):
        return problem_response(ApiProblem(409, str(error)))
    logger.error(
        "api %s %s: unhandled rebill error: %s", request.method, request.path, error
    )
    return problem_response(ApiProblem(500, "internal error; see the server log"))


def handle_http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    return problem_response(ApiProblem(status, error.description or error.name))
