"""`leadgate dev-token`: end-user tokens for local development (issue 10 #5).

They are signed by an Ed25519 key kept in the data directory (created on first use, 0600).
Its public JWKS is trusted only by a `serve --demo` gateway (which also serves it at
`/.well-known/jwks.json`); a production gateway knows nothing of this key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from leadgate.domain.models import Role

KEY_FILE: Final = "dev-token-key.pem"
# The `iss` of a development token unless LEADGATE_JWT_ISSUER names another.
DEV_ISSUER: Final = "leadgate-dev"
ALGORITHM: Final = "EdDSA"


def signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The development key of `data_dir`, created (readable by its owner only) if missing."""
    path = data_dir / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _load(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        # O_EXCL: two first uses at once keep one key (the loser reads the winner's).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def _load(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def public_jwks(data_dir: Path) -> dict[str, Any]:
    """The JWKS (one key) that verifies this data directory's development tokens."""
    return {"keys": [_public_jwk(signing_key(data_dir))]}


def _public_jwk(key: Ed25519PrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = dict(OKPAlgorithm.to_jwk(key.public_key(), as_dict=True))
    # RFC 7638 thumbprint: the same key always has the same kid.
    members = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":")
    )
    digest = hashlib.sha256(members.encode()).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def mint(
    data_dir: Path,
    *,
    organization_id: UUID,
    role: Role,
    ttl_seconds: float,
    subject: str,
    issuer: str | None = None,
    audience: str | None = None,
    organization_claim: str = "org_id",
    role_claim: str = "role",
) -> str:
    """A signed token for `subject` in `organization_id`, valid `ttl_seconds` from now."""
    key = signing_key(data_dir)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer or DEV_ISSUER,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + max(1, round(ttl_seconds)),
        organization_claim: str(organization_id),
        role_claim: role,
    }
    if audience is not None:
        claims["aud"] = audience
    kid = _public_jwk(key)["kid"]
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})
