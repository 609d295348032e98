"""Classify the result of a charge attempt into an outcome class.

The BigCommerce error code decides first, the HTTP status second. A request that
may have reached BigCommerce (timeout after sending, reset, 5xx, codes 10000 and
30105) is UNKNOWN: it is never sent again before reconciliation shows that no
payment exists.
"""

from __future__ import annotations

from models import OutcomeClass
from rebill.errors import (
    ApiError,
    BigCommerceError,
    OutcomeUnknown,
    RateLimited,
    RequestNotSent,
)

CODE_CLASSES: dict[int, OutcomeClass] = {
    10000: OutcomeClass.UNKNOWN,  # gateway difficulty; the charge may exist
    10001: OutcomeClass.OUR_DATA,  # invalid data in our request
    30000: OutcomeClass.MERCHANT_CONFIG,  # no payment gateway configured
    30001: OutcomeClass.MERCHANT_CONFIG,  # gateway rejects the configuration
    30002: OutcomeClass.MERCHANT_CONFIG,  # stored instruments not enabled
    30003: OutcomeClass.ORDER_PROBLEM,  # order not found
    30004: OutcomeClass.ORDER_PROBLEM,  # order total differs from the PAT
    30050: OutcomeClass.OUR_DATA,  # instrument could not be saved
    30051: OutcomeClass.HARD_DECLINE,  # stored instrument not found
    30100: OutcomeClass.TRANSIENT,  # PAT could not be created
    30101: OutcomeClass.ORDER_PROBLEM,  # order not in Incomplete status
    30102: OutcomeClass.HARD_DECLINE,  # card details could not be verified
    30103: OutcomeClass.HARD_DECLINE,  # card expired
    30104: OutcomeClass.SOFT_DECLINE,  # contact the card issuer
    30105: OutcomeClass.UNKNOWN,  # duplicate transaction: never pay again blind
    30106: OutcomeClass.SOFT_DECLINE,  # insufficient funds
    30107: OutcomeClass.HARD_DECLINE,  # PayPal authorization revoked
}


def classify_error(error: BigCommerceError, *, payment_sent: bool) -> OutcomeClass:
    """Return the outcome class of a failed call.

    `payment_sent` tells whether the failed call was POST /payments or came
    after it; a failure before that point can never have moved money.
    """
    if isinstance(error, RequestNotSent | RateLimited):
        return OutcomeClass.TRANSIENT
    if isinstance(error, OutcomeUnknown):
        return OutcomeClass.UNKNOWN if payment_sent else OutcomeClass.TRANSIENT
    if error.code is not None and error.code in CODE_CLASSES:
        found = CODE_CLASSES[error.code]
        if found is OutcomeClass.UNKNOWN and not payment_sent:
            return OutcomeClass.TRANSIENT
        return found
    return _classify_status(error, payment_sent=payment_sent)


def _classify_status(error: BigCommerceError, *, payment_sent: bool) -> OutcomeClass:
    status = error.http_status or 0
    if status >= 500:
        return OutcomeClass.UNKNOWN if payment_sent else OutcomeClass.TRANSIENT
    if status == 401 and payment_sent:
        return OutcomeClass.TRANSIENT  # PAT rejected: mint a new one
    if status in (401, 403) and isinstance(error, ApiError):
        return OutcomeClass.MERCHANT_CONFIG  # store API token invalid or lacks scope
    if status in (404, 409):
        return OutcomeClass.ORDER_PROBLEM
    return OutcomeClass.OUR_DATA
