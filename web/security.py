"""Signed session cookies and the server-side secret.

A session is a small JSON object carried in the cookie, base64url-encoded and signed with
HMAC-SHA256 under the server secret (``[web] secret_key``; when empty, a random key generated once and
kept in ``<data_dir>/secret_key`` with mode 0600, so every process of the site shares it). The cookie
carries its own expiry (``exp``); the signature covers it, so a client cannot extend a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from config import Settings
from config.log import get_logger

log = get_logger(__name__)

SECRET_FILE_NAME = "secret_key"
_MIN_SECRET_BYTES = 32


class SecurityError(Exception):
    """Base of the session/secret errors."""


class BadSignature(SecurityError):
    """The token was not signed with our secret, or is malformed."""


class SessionExpired(SecurityError):
    """The token's signature is good but its lifetime is over."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret_key(settings: Settings) -> bytes:
    """The configured secret, or the one kept in ``<data_dir>/secret_key`` (created 0600 on first use)."""
    if settings.web.secret_key:
        return settings.web.secret_key.encode("utf-8")
    path = Path(settings.general.data_dir) / SECRET_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("secret_key_permissions_tightened", path=str(path), mode=oct(mode))
            path.chmod(0o600)
        key = path.read_text("ascii").strip()
        if len(key) < _MIN_SECRET_BYTES:
            raise SecurityError(f"{path}: secret key too short; delete the file to generate a new one")
        return key.encode("ascii")
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    log.info("secret_key_generated", path=str(path))
    return key.encode("ascii")


@dataclass(frozen=True)
class SessionSigner:
    """Signs and checks session tokens: ``payload.signature``, both base64url."""

    secret: bytes
    max_age_seconds: int
    purpose: bytes = b"hotline-session-v1"

    def _mac(self, body: str) -> str:
        key = hmac.new(self.secret, self.purpose, hashlib.sha256).digest()  # key separated per purpose
        return _b64encode(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())

    def dumps(self, data: Mapping[str, Any], now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        payload = {**data, "iat": issued, "exp": issued + self.max_age_seconds}
        body = _b64encode(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        return f"{body}.{self._mac(body)}"

    def loads(self, token: str, now: float | None = None) -> dict[str, Any]:
        body, sep, mac = token.partition(".")
        if not sep or not body or not mac:
            raise BadSignature("malformed token")
        try:
            body.encode("ascii")
        except UnicodeEncodeError:
            raise BadSignature("malformed token") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise BadSignature("bad signature")
        try:
            data = json.loads(_b64decode(body))
        except (ValueError, UnicodeDecodeError):
            raise BadSignature("bad payload") from None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            raise BadSignature("bad payload")
        if (now if now is not None else time.time()) >= data["exp"]:
            raise SessionExpired("session expired")
        return data


def new_token() -> str:
    """A random token for CSRF and session ids."""
    return secrets.token_urlsafe(32)


def tokens_equal(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def password_fingerprint(password_hash: str, secret: bytes) -> str:
    """A short keyed digest of the user's password hash: a password change ends every older session."""
    return _b64encode(hmac.new(secret, password_hash.encode("utf-8"), hashlib.sha256).digest()[:12])
