"""Apply injected faults to the request being handled."""

from __future__ import annotations

import logging
import socket
import time

from flask import Response, abort, g, request

from sandbox.faults import Fault, fault_rejection
from sandbox.state import SandboxState

logger = logging.getLogger(__name__)


def apply_before(state: SandboxState, store_hash: str, endpoint: str) -> Fault | None:
    """Take the endpoint's next fault and apply what comes before handling.

    Raises the rejection of an immediate fault and sleeps for a "slow" one.
    Returns the fault, or None, so an after-charge fault can finish the request.
    """
    fault = state.take_fault(store_hash, endpoint)
    if fault is None:
        return None
    logger.info(
        "store %s %s %s: injected fault %s",
        store_hash,
        request.method,
        endpoint,
        fault.kind,
    )
    if fault.kind == "rate_limit_bare":
        g.bare_response = True
        abort(Response(b"", status=429))
    if fault.kind in ("error", "rate_limit", "server_error"):
        raise fault_rejection(fault, state.api_quota(store_hash))
    if fault.kind == "slow":
        assert fault.delay is not None
        time.sleep(fault.delay)
    return fault


def apply_after_charge(fault: Fault | None) -> None:
    """Stall or drop the connection once the payment has been handled."""
    if fault is None:
        return
    if fault.kind == "stall_after_charge":
        assert fault.delay is not None
        time.sleep(fault.delay)
    if fault.kind == "drop_after_charge":
        drop_connection()


def drop_connection() -> None:
    """Close the client's connection so that no response reaches it.

    werkzeug's development server puts the connection socket in the WSGI
    environ. Writing the response afterwards fails with a broken pipe, and
    werkzeug handles that as a dropped connection.
    """
    connection = request.environ.get("werkzeug.socket")
    if not isinstance(connection, socket.socket):
        raise RuntimeError(
            "cannot drop the connection: the server did not expose its socket; "
            "run the sandbox on werkzeug's server (SandboxServer)"
        )
    logger.info(
        "%s %s: connection dropped after the charge", request.method, request.path
    )
    connection.shutdown(socket.SHUT_RDWR)
