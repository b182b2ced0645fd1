"""Bearer JWT verification: keys from a JWKS URL (cached, refreshed on an unknown kid) or file, strict claims."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

# Asymmetric algorithms only: never 'none', never HS* (a public key must not work as a shared secret).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "ES256", "ES384")


class InvalidToken(Exception):
    """The bearer token cannot be trusted; the message is safe to show the caller."""


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
        if jwks_file is not None:
            key_set = PyJWKSet.from_dict(json.loads(jwks_file.read_text()))
            self._keys = {key.key_id or "": key for key in key_set.keys}

    def _key_for(self, token: str, header: Mapping[str, Any]) -> PyJWK:
        kid = header.get("kid")
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token)  # refetches the set on an unknown kid
            except jwt.PyJWKClientError as exc:
                raise InvalidToken(f"no trusted key for this token ({exc})") from None
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(str(kid))
        if key is None:
            raise InvalidToken("the token's key id (kid) is not among the trusted keys")
        return key

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidToken(
                f"signing algorithm {algorithm!r} is not accepted; use one of {', '.join(ALLOWED_ALGORITHMS)}"
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
            raise InvalidToken(f"the token's audience does not include {self.audience}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token's issuer is not trusted") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is invalid: {exc}") from None
        return claims
