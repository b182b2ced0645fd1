"""Verified bearer tokens are remembered briefly, never past their expiry."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from service.auth import tokens
from service.auth.tokens import InvalidToken, TokenVerifier

ISSUER = "https://auth.example.org"
AUDIENCE = "https://proms.example.org/fhir"


@pytest.fixture
def signing(tmp_path: Path) -> tuple[TokenVerifier, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    verifier = TokenVerifier(issuers=[ISSUER], audience=AUDIENCE, jwks_file=jwks, leeway_seconds=0)
    return verifier, key


def _token(key: rsa.RSAPrivateKey, lifetime: int) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + lifetime, "scope": "system/*.rs"}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def test_a_repeated_token_is_checked_once(
    signing: tuple[TokenVerifier, rsa.RSAPrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier, key = signing
    token = _token(key, 600)
    checks = []
    original = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: checks.append(t) or original(t))
    first, second = verifier.verify(token), verifier.verify(token)
    assert first == second and first["scope"] == "system/*.rs"
    assert len(checks) == 1
    second["scope"] = "changed"  # callers get their own copy
    assert verifier.verify(token)["scope"] == "system/*.rs"


def test_a_remembered_token_is_refused_once_it_expires(signing: tuple[TokenVerifier, rsa.RSAPrivateKey]) -> None:
    verifier, key = signing
    token = _token(key, 1)
    verifier.verify(token)
    time.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.1)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_remembered_token_is_checked_again_after_a_minute(
    signing: tuple[TokenVerifier, rsa.RSAPrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier, key = signing
    token = _token(key, 3600)
    verifier.verify(token)
    checks = []
    original = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: checks.append(t) or original(t))
    later = time.time() + tokens.VERIFIED_TTL_SECONDS + 1
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    verifier.verify(token)
    assert len(checks) == 1


def test_a_bad_token_is_never_remembered(signing: tuple[TokenVerifier, rsa.RSAPrivateKey]) -> None:
    verifier, key = signing
    token = _token(key, 600)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.verify(forged)
    assert forged not in verifier._verified
