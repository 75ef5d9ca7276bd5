"""Typed errors, one class per code of the error registry (packages/protocol/src/errors.ts, docs/errors.md).

`error_from_wire` turns the `{code, message, retryAfterMs}` of a `connection.error`, `message.failed`,
`denied[]` entry or HTTP error body into the matching class, so callers can `except RateLimitedError`."""
from __future__ import annotations

# code -> (HTTP status, close code), as in errors.ts; tests/test_errors.py keeps the two in sync.
ERRORS: dict[str, tuple[int, int]] = {
    "BAD_REQUEST": (400, 4000),
    "UNAUTHORIZED": (401, 4001),
    "TOKEN_EXPIRED": (401, 4002),
    "FORBIDDEN": (403, 4011),
    "NOT_FOUND": (404, 4000),
    "RATE_LIMITED": (429, 4008),
    "PAYLOAD_TOO_LARGE": (413, 1009),
    "CONFLICT": (409, 4009),
    "INTERNAL": (500, 1011),
    "UNAVAILABLE": (503, 1001),
    "TIMEOUT": (504, 1011),
    "STREAM_LIMIT": (429, 4008),
    "STREAM_TOO_LARGE": (413, 1009),
    "STREAM_NOT_OPEN": (409, 4000),
    "STREAM_IDLE_TIMEOUT": (408, 4000),
}


class ApiXError(Exception):
    """An error answered by the gateway (or, for TIMEOUT, no answer in time)."""

    code = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None, retry_after_ms: int | None = None,
                 fatal: bool = False, channel: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.fatal = fatal
        self.channel = channel

    @property
    def http_status(self) -> int:
        return ERRORS.get(self.code, (500, 1011))[0]

    @property
    def close_code(self) -> int:
        return ERRORS.get(self.code, (500, 1011))[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message})"


class BadRequestError(ApiXError): code = "BAD_REQUEST"
class UnauthorizedError(ApiXError): code = "UNAUTHORIZED"
class TokenExpiredError(ApiXError): code = "TOKEN_EXPIRED"
class ForbiddenError(ApiXError): code = "FORBIDDEN"
class NotFoundError(ApiXError): code = "NOT_FOUND"
class RateLimitedError(ApiXError): code = "RATE_LIMITED"
class PayloadTooLargeError(ApiXError): code = "PAYLOAD_TOO_LARGE"
class ConflictError(ApiXError): code = "CONFLICT"
class InternalError(ApiXError): code = "INTERNAL"
class UnavailableError(ApiXError): code = "UNAVAILABLE"
class ApiXTimeoutError(ApiXError): code = "TIMEOUT"
class StreamLimitError(ApiXError): code = "STREAM_LIMIT"
class StreamTooLargeError(ApiXError): code = "STREAM_TOO_LARGE"
class StreamNotOpenError(ApiXError): code = "STREAM_NOT_OPEN"
class StreamIdleTimeoutError(ApiXError): code = "STREAM_IDLE_TIMEOUT"


ERROR_CLASSES: dict[str, type[ApiXError]] = {
    cls.code: cls
    for cls in (BadRequestError, UnauthorizedError, TokenExpiredError, ForbiddenError, NotFoundError,
                RateLimitedError, PayloadTooLargeError, ConflictError, InternalError, UnavailableError,
                ApiXTimeoutError, StreamLimitError, StreamTooLargeError, StreamNotOpenError,
                StreamIdleTimeoutError)
}


def error_from_wire(body: dict, default_code: str = "INTERNAL") -> ApiXError:
    """The typed error for a wire error object; an unknown code (a newer server) stays an ApiXError."""
    code = str(body.get("code") or default_code)
    cls = ERROR_CLASSES.get(code, ApiXError)
    return cls(str(body.get("message") or body.get("reason") or code), code=code,
               retry_after_ms=body.get("retryAfterMs"), fatal=bool(body.get("fatal", False)),
               channel=body.get("channel"))


def close_code_allows_reconnect(code: int) -> bool:
    """As closeCodeAllowsReconnect in errors.ts: 1000-1999 (not 1009) and 4010 reconnect; 4xxx stop."""
    if code in (4010, 1001):
        return True
    if code >= 4000:
        return False
    return code != 1009
