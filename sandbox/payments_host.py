"""The payments host: POST /stores/{hash}/payments, authorized by a PAT."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from sandbox.errors import ApiRejection, Envelope
from sandbox.fault_hooks import apply_after_charge, apply_before
from sandbox.responses import render_rejection
from sandbox.state import SandboxState


def create_blueprint(state: SandboxState) -> Blueprint:
    """Build the Process Payment route under /payments-host."""
    host = Blueprint(
        "payments_host", __name__, url_prefix="/payments-host/stores/<store_hash>"
    )

    @host.post("/payments")
    def process_payment(store_hash: str) -> Response:
        decision = state.admit_payment(store_hash)
        if decision is not None and not decision.allowed:
            raise ApiRejection(
                429,
                "Too Many Requests: at most 50 payment requests per 4 seconds.",
                envelope=Envelope.PAYMENTS,
                headers=decision.headers(retry_after=False),
            )
        fault = apply_before(state, store_hash, "payments")
        try:
            data = state.process_payment(
                store_hash,
                authorization=request.headers.get("Authorization"),
                accept=request.headers.get("Accept"),
                body=request.get_json(force=True, silent=True),
            )
            response = jsonify({"data": data})
            response.status_code = 201
        except ApiRejection as error:
            if fault is None:
                raise
            response = render_rejection(error)
        apply_after_charge(fault)
        return response

    return host
