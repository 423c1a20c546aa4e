"""Tokens at rest: Fernet (AES-128-CBC + HMAC) with a key derived from a setting."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from pikcel_jobs.config import Settings


class TokenCipher:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("TOKEN_ENCRYPTION_KEY (or SESSION_SECRET) must be set to store tokens")
        key = base64.urlsafe_b64encode(hashlib.sha256(b"pikcel-tokens:" + secret.encode()).digest())
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCipher:
        secret = (
            settings.token_encryption_key.get_secret_value()
            or settings.session_secret.get_secret_value()
        )
        return cls(secret)

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise ValueError(
                "a stored token cannot be read with the current TOKEN_ENCRYPTION_KEY"
            ) from exc
