"""Errors the client library raises, each with a stable code (relay codes are those of docs/API.md)."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of client errors. ``code`` is stable; ``str(err)`` explains it to a person."""

    code = "client_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class RelayError(ClientError):
    """The relay refused a request; ``code`` and ``message`` come from its error body."""

    def __init__(
        self, code: str, message: str, *, status: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class RelayUnreachableError(ClientError):
    """The relay could not be reached (connection refused, timed out) after the allowed retries."""

    code = "relay_unreachable"


class KeyChangeError(ClientError):
    """Sending refused: a recipient's keys changed since they were pinned and nobody has accepted it."""

    code = "key_changed"

    def __init__(self, members: list[str]) -> None:
        super().__init__(
            "the keys of "
            + ", ".join(members)
            + " changed since you last checked them; compare safety numbers and run "
            "`hotline verify` (or accept the change) before sending"
        )
        self.members = members


class ProfileError(ClientError):
    """A profile is missing, unreadable or locked."""

    code = "profile_error"
