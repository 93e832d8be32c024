"""API keys as the REST API and ``belugaflow keys`` make and store them.

A key is ``bf_`` and 32 random bytes (URL-safe base64). Only its SHA-256 is stored: the key has
256 random bits, so a fast hash is as safe as a slow one, and a presented key is hashed before
it is looked up, so no comparison of secrets can leak it through timing.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["KEY_PREFIX", "hash_key", "new_key"]

KEY_PREFIX = "bf_"


def new_key() -> str:
    """A fresh API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """How a key is stored: ``sha256:`` and its hex SHA-256."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
