"""The errors rebill raises, all under one base class.

    RebillError
    ├── ConfigurationError        a setting is missing or invalid
    ├── InvalidInput              a merchant's record or option is invalid
    │   └── InvalidInputFile      one or more records of a file are invalid
    ├── RateLimitWait             the limiter will not admit a request soon enough
    │   └── LimiterUnavailable    Redis cannot be reached, so nothing is admitted
    ├── RecordNotFound            an operator action names a row that does not exist
    ├── ActionRejected            an operator action's precondition does not hold
    └── BigCommerceError          a call to BigCommerce failed
        ├── RequestNotSent        the request certainly never left (connect failed)
        ├── OutcomeUnknown        the request may have reached BigCommerce
        │                         (read timeout, connection reset, 5xx)
        ├── RateLimited           HTTP 429
        └── ApiError              BigCommerce answered with an error status

Each BigCommerceError carries the HTTP status, BigCommerce's error code, the
store hash, the order id and the endpoint, never a token.
"""

from __future__ import annotations

from collections.abc import Sequence


class RebillError(Exception):
    """Base class of every error rebill raises on purpose."""


class ConfigurationError(RebillError):
    """A setting is missing or invalid; the message names the variable."""


class InvalidInput(RebillError):
    """A merchant's record, field or option is invalid.

    `record` names the record (for example "line 3" or "subscription 12") and
    `field` the field inside it, so a merchant can find and fix the value.
    """

    def __init__(self, record: str, field: str, message: str) -> None:
        self.record = record
        self.field = field
        self.message = message
        super().__init__(f"{record}: {field}: {message}")


class InvalidInputFile(InvalidInput):
    """One or more records of a file are invalid; nothing from it was written."""

    def __init__(self, path: str, errors: Sequence[InvalidInput]) -> None:
        self.path = path
        self.errors = list(errors)
        records = len({error.record for error in self.errors})
        lines = "\n".join(f"  {error}" for error in self.errors)
        RebillError.__init__(
            self,
            f"{path}: {len(self.errors)} error(s) in {records} record(s), nothing "
            f"was imported:\n{lines}",
        )
        self.record = path
        self.field = ""
        self.message = str(self)


class RateLimitWait(RebillError):
    """The rate limiter would make this request wait `seconds`; nothing was sent.

    Raised instead of blocking a worker thread, so the renewal can give its
    thread back and come back after the wait.
    """

    def __init__(self, store_hash: str, host: str, seconds: float) -> None:
        self.store_hash = store_hash
        self.host = host
        self.seconds = seconds
        super().__init__(
            f"store {store_hash}: {host} rate limit, next request in {seconds:.2f} s"
        )


class LimiterUnavailable(RateLimitWait):
    """The rate limiter's Redis cannot be reached, so the request was not sent.

    Without Redis no worker can know what the others sent, so the limiter
    admits nothing (it fails closed) and the renewal waits `seconds` like any
    other rate-limit wait. `reason` names the Redis error.
    """

    def __init__(self, store_hash: str, host: str, seconds: float, *, reason: str):
        super().__init__(store_hash, host, seconds)
        self.reason = reason
        self.args = (
            f"store {store_hash}: rate limiter unavailable ({reason}); {host} "
            f"request not sent, retry in {seconds:.0f} s",
        )


class RecordNotFound(RebillError):
    """An operator action names a store, subscription or cycle that does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key} not found")


class ActionRejected(RebillError):
    """An operator action was rejected because its precondition does not hold.

    `target` names the row ("cycle 12"); nothing was written.
    """

    def __init__(self, target: str, message: str) -> None:
        self.target = target
        self.message = message
        super().__init__(f"{target}: {message}")


class BigCommerceError(RebillError):
    """A call to BigCommerce failed."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        store_hash: str,
        order_id: int | None = None,
        http_status: int | None = None,
        code: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.store_hash = store_hash
        self.order_id = order_id
        self.http_status = http_status
        self.code = code
        self.detail = message
        super().__init__(self._describe(message))

    def _describe(self, message: str) -> str:
        parts = [f"store {self.store_hash}"]
        if self.order_id is not None:
            parts.append(f"order {self.order_id}")
        parts.append(self.endpoint)
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        return f"{' '.join(parts)}: {message}"


class RequestNotSent(BigCommerceError):
    """The request never reached BigCommerce, so sending it again is safe."""


class OutcomeUnknown(BigCommerceError):
    """The request may have been processed; reconcile before sending it again."""


class RateLimited(BigCommerceError):
    """BigCommerce responded 429; `retry_after` is in seconds, None when not given."""

    def __init__(self, message: str, *, retry_after: float | None, **context) -> None:
        self.retry_after = retry_after
        super().__init__(message, **context)


class ApiError(BigCommerceError):
    """BigCommerce responded with an error status and, usually, an error code."""
