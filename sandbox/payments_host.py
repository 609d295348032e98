"""The payments host: POST /stores/{hash}/payments, authorized by a PAT."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from sandbox.state import SandboxState


def create_blueprint(state: SandboxState) -> Blueprint:
    """Build the Process Payment route under /payments-host."""
    host = Blueprint(
        "payments_host", __name__, url_prefix="/payments-host/stores/<store_hash>"
    )

    @host.post("/payments")
    def process_payment(store_hash: str) -> tuple[Response, int]:
        data = state.process_payment(
            store_hash,
            authorization=request.headers.get("Authorization"),
            accept=request.headers.get("Accept"),
            body=request.get_json(force=True, silent=True),
        )
        return jsonify({"data": data}), 201

    return host
