"""Bearer JWT verification: keys from a JWKS URL (cached, refreshed on an unknown kid) or file, strict claims."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

# Asymmetric algorithms only: never 'none', never HS* (a public key must not work as a shared secret).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "ES256", "ES384")

# A verified token is remembered for at most this long (and never past its expiry), so a client sending the
# same token with every request pays for one signature check per minute rather than one per request.
VERIFIED_TTL_SECONDS = 60
VERIFIED_CAPACITY = 4096


class InvalidToken(Exception):
    """The bearer token cannot be trusted.

    ``str()`` is the ``reason``: a fixed sentence that never quotes the token, safe even in a response header.
    ``detail`` may quote what the token says (its algorithm, key id...): for the response body only, where it
    is escaped JSON.
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.detail = detail or reason


class TokenVerifier:
    def __init__(
        self,
        *,
        issuers: Sequence[str],
        audience: str,
        jwks_url: str | None = None,
        jwks_file: Path | None = None,
        leeway_seconds: int = 30,
    ) -> None:
        if not issuers:
            raise ValueError("at least one trusted issuer is required")
        if (jwks_url is None) == (jwks_file is None):
            raise ValueError("exactly one of a JWKS URL or a JWKS file is required")
        self.issuers = list(issuers)
        self.audience = audience
        self.leeway = leeway_seconds
        self._client = PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5) if jwks_url else None
        self._keys: dict[str, PyJWK] = {}
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}
        self._verified_lock = threading.Lock()
        if jwks_file is not None:
            key_set = PyJWKSet.from_dict(json.loads(jwks_file.read_text()))
            self._keys = {key.key_id or "": key for key in key_set.keys}

    def _key_for(self, token: str, header: Mapping[str, Any]) -> PyJWK:
        kid = header.get("kid")
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token)  # refetches the set on an unknown kid
            except jwt.PyJWKClientError as exc:
                raise InvalidToken("no trusted key for this token", f"no trusted key for this token ({exc})") from None
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(str(kid))
        if key is None:
            raise InvalidToken("the token's key id (kid) is not among the trusted keys")
        return key

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, once its signature, algorithm, issuer, audience and times check out."""
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, valid_until = remembered
            if time.time() < valid_until:
                return dict(claims)
            with self._verified_lock:
                self._verified.pop(token, None)
        claims = self._verify(token)
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            with self._verified_lock:
                if len(self._verified) >= VERIFIED_CAPACITY:
                    self._verified.pop(next(iter(self._verified)))
                self._verified[token] = (dict(claims), min(exp + self.leeway, time.time() + VERIFIED_TTL_SECONDS))
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidToken(
                "the token's signing algorithm is not accepted",
                f"signing algorithm {algorithm!r} is not accepted; use one of {', '.join(ALLOWED_ALGORITHMS)}",
            )
        key = self._key_for(token, header)
        if key.algorithm_name not in (algorithm, None) and key.algorithm_name in ALLOWED_ALGORITHMS:
            raise InvalidToken("the token's algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuers,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(
                "the token's audience is not this service", f"the token's audience does not include {self.audience}"
            ) from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token's issuer is not trusted") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("the token is invalid", f"the token is invalid: {exc}") from None
        return claims
