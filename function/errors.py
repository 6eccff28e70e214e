"""Errors a caller can act on. Each carries an honest HTTP status and, for bad input, the field."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = message
        self.field = field
        self.headers = headers or {}
        # Machine-readable details beside the message (e.g. the languages detected and supported).
        self.extra = extra or {}

    @property
    def message(self) -> str:
        """The detail, led by the field it is about (under the caller's name for it)."""
        return f"{self.field}: {self.detail}" if self.field else self.detail

    @property
    def permanent(self) -> bool:
        """Retrying the same input cannot succeed (a 4xx)."""
        return self.status < 500

    def body(self) -> dict[str, Any]:
        # "type" and "param" mirror OpenAI's error shape, so OpenAI SDKs surface our messages.
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "type": "invalid_request_error" if self.permanent else "server_error",
        }
        if self.field is not None:
            error["field"] = self.field
            error["param"] = self.field
        error.update(self.extra)
        return {"error": error}

    def record(self) -> dict[str, Any]:
        """The error as a manifest records it (events, job parts, jobs)."""
        return {"code": self.code, "message": self.message, "field": self.field}

    def log_fields(self) -> dict[str, Any]:
        """What a request's log line says about the error (every adapter's, the same names)."""
        return {"error": self.code, "error_field": self.field}


def bad_field(field: str, message: str, code: str = "invalid_field") -> ApiError:
    return ApiError(400, code, message, field=field)


@contextmanager
def renamed_fields(names: dict[str, str]) -> Iterator[None]:
    """Report errors under the caller's field names (e.g. OpenAI's "input" for our "text")."""
    try:
        yield
    except ApiError as exc:
        if exc.field in names:
            exc.field = names[exc.field]
        raise
