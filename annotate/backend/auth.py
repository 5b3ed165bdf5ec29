"""Basic auth for every route of the backend, as a FastAPI dependency.

Label Studio sends the credentials it was connected with (``studio connect`` reads the same
environment variables) on /health, /setup, /predict and START_TRAINING, and ``connect`` adds them to
the webhook Label Studio registers. Both halves are compared in constant time, always both, so the
time of a refusal tells nothing about which half or how much of it was right.
"""

from __future__ import annotations

import os
import secrets

from fastapi import HTTPException, Request
from fastapi.security import HTTPBasic

from annotate.errors import InputError

USER_ENV = "ANNOTATE_BACKEND_USER"
PASSWORD_ENV = "ANNOTATE_BACKEND_PASSWORD"


def basic_auth_from_env() -> tuple[str, str] | None:
    """Credentials the backend demands, from ANNOTATE_BACKEND_USER / ANNOTATE_BACKEND_PASSWORD.

    Both or none: one without the other is refused, so a half-set pair never serves without auth.
    """
    user, password = os.environ.get(USER_ENV, ""), os.environ.get(PASSWORD_ENV, "")
    if bool(user) != bool(password):
        given, missing = (USER_ENV, PASSWORD_ENV) if user else (PASSWORD_ENV, USER_ENV)
        raise InputError(f"{given} is set but {missing} is not: set both for basic auth, or neither")
    if ":" in user:
        raise InputError(f"{USER_ENV} holds a ':'; basic auth cannot carry it (choose a user name without one)")
    return (user, password) if user else None


class BasicAuth:
    """A dependency that lets a request through only with these credentials, else answers 401."""

    def __init__(self, credentials: tuple[str, str]) -> None:
        self._user, self._password = (part.encode() for part in credentials)
        self._scheme = HTTPBasic(auto_error=False)

    async def __call__(self, request: Request) -> None:
        try:
            given = await self._scheme(request)
        except HTTPException:  # a header that is not valid base64 "user:password"
            given = None
        if given is None or not self.matches(given.username, given.password):
            raise HTTPException(
                status_code=401, detail="authentication required", headers={"WWW-Authenticate": "Basic"}
            )

    def matches(self, user: str, password: str) -> bool:
        """Both halves compared with :func:`secrets.compare_digest`, the second even when the first differs."""
        user_ok = secrets.compare_digest(user.encode(), self._user)
        password_ok = secrets.compare_digest(password.encode(), self._password)
        return user_ok and password_ok
