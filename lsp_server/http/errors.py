"""Errors in the JSON shape llama.cpp's and OpenAI's clients both read:
`{"error": {"code", "message", "type", "param"}}`."""

from __future__ import annotations

from starlette.responses import JSONResponse

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "unavailable_error",
}


class HttpError(Exception):
    """Raised by a handler; becomes an error response (never a traceback)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int = 0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after


def error_response(error: HttpError) -> JSONResponse:
    body = {
        "error": {
            "code": error.code or error.status,
            "message": error.message,
            "type": _TYPES.get(error.status, "invalid_request_error"),
            "param": error.param,
        }
    }
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return JSONResponse(body, status_code=error.status, headers=headers)
