"""Secrets: password hashes, random tokens, and HMAC-signed tokens (pure functions).

Signed tokens are ``<base64url(json payload)>~<base64url(hmac-sha256)>`` (no
dots or slashes, so they can ride inside an image id in a tile URL); the
payload carries its kind, so a token minted for one purpose (a tile URL) can
never be replayed as another (a share link).  They are verified with the
secret key alone, no database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id with the library's RFC 9106 "low memory" defaults (64 MiB, t=3).
_hasher = PasswordHasher()

API_KEY_PREFIX = "mt_"
SEP = "~"

#: The system account of the analysis workers `microtome serve` starts
#: (microtome/local_worker.py); reserved so no person's account can become it.
LOCAL_WORKER_USER = "local-worker"
RESERVED_USERNAMES = frozenset({LOCAL_WORKER_USER})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    """A real argon2 hash of a random password, made once (lazily: it takes a while)."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_hasher.hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        # Unknown user or no password: spend the same time as a real check, so the
        # answer's timing does not tell which user names exist.
        try:
            _hasher.verify(_dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            pass
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """What we store instead of a bearer secret: its SHA-256 (tokens are high-entropy,
    so a fast hash is enough and keeps per-request lookups cheap)."""
    # surrogateescape: a header with non-UTF-8 bytes is simply a token nobody has.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: dict[str, Any]) -> str:
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}{SEP}{_b64(mac)}"


def verify(key: bytes, token: str, kind: str, now: float | None = None) -> dict[str, Any] | None:
    """The payload of a valid, unexpired token of this kind, else None."""
    if not token or len(token) > 2048 or token.count(SEP) != 1:
        return None
    body_s, mac_s = token.split(SEP)
    try:
        body, mac = _unb64(body_s), _unb64(mac_s)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        return None
    exp = payload.get("e")
    if not isinstance(exp, int) or exp < (time.time() if now is None else now):
        return None
    return payload


def tile_token(key: bytes, image_id: int, version: str, expires: int, scope: str = "read",
               user: int | None = None) -> str:
    """A signed tile/IIIF/DZI URL token: HMAC over image id, version, expiry, scope and
    creator (the URL works only while its creator can still read the image)."""
    return sign(key, {"k": "tile", "i": image_id, "v": version, "e": expires, "s": scope,
                      "u": user})


def share_token(key: bytes, share_id: int, expires: int) -> str:
    """A share-link token; revocation is checked against the share_links row (cached)."""
    return sign(key, {"k": "share", "i": share_id, "e": expires})
