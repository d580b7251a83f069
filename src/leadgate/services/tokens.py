"""End-user bearer tokens (JWTs, issue 10 #1): signature, time, issuer and audience verified
with PyJWT, then the claims that make a principal read out.

Keys come from a JWKS (an identity provider's URL, a file, and under `--demo` the development
key of `leadgate dev-token`) for RS256, ES256 and EdDSA; an HS256 shared secret is for
development only. The algorithm is the key's, never the token's choice: a header naming any
other (`none`, or HS256 where the verifier holds an RSA public key: algorithm confusion) is
refused before a signature is looked at.

Every refusal is `Unauthenticated` with a fixed message ending in a detail code, e.g.
`(token_expired)`: a client can tell expiry from a bad signature, and no claim value of the
token is ever echoed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import aiohttp
import jwt

from leadgate.config import Settings
from leadgate.domain.errors import ServiceUnavailable, Unauthenticated
from leadgate.domain.ids import parse_uuid
from leadgate.domain.models import ROLES, Role

log = logging.getLogger(__name__)

# Asymmetric algorithms a JWKS key may carry; each key verifies only its own.
KEY_ALGORITHMS: Final = frozenset({"RS256", "ES256", "EdDSA"})
HMAC_ALGORITHM: Final = "HS256"
# A JWKS document is a few kilobytes; anything far larger is not one.
_MAX_JWKS_BYTES: Final = 1024 * 1024
_FETCH_TIMEOUT_SECONDS: Final = 5.0

# Detail codes, at the end of each refusal's message.
MALFORMED: Final = "token_malformed"
ALGORITHM_REFUSED: Final = "token_algorithm_refused"
UNKNOWN_KEY: Final = "token_unknown_key"
BAD_SIGNATURE: Final = "token_bad_signature"
EXPIRED: Final = "token_expired"
NOT_YET_VALID: Final = "token_not_yet_valid"
WRONG_ISSUER: Final = "token_wrong_issuer"
WRONG_AUDIENCE: Final = "token_wrong_audience"
MISSING_CLAIM: Final = "token_missing_claim"
BAD_CLAIM: Final = "token_bad_claim"
UNKNOWN_ORGANIZATION: Final = "token_unknown_organization"
NOT_ACCEPTED: Final = "token_not_accepted"

_MESSAGES: Final[Mapping[str, str]] = {
    MALFORMED: "The bearer token is not a well-formed JWT",
    ALGORITHM_REFUSED: "The bearer token's algorithm is not accepted",
    UNKNOWN_KEY: "The bearer token was signed with a key this server does not know",
    BAD_SIGNATURE: "The bearer token's signature does not verify",
    EXPIRED: "The bearer token has expired",
    NOT_YET_VALID: "The bearer token is not valid yet",
    WRONG_ISSUER: "The bearer token was issued by another issuer",
    WRONG_AUDIENCE: "The bearer token is meant for another audience",
    MISSING_CLAIM: "The bearer token lacks a required claim",
    BAD_CLAIM: "The bearer token's organization or role claim is not usable",
    UNKNOWN_ORGANIZATION: "The bearer token's organization is not known",
    NOT_ACCEPTED: "This server accepts API keys only, not bearer tokens",
}


def refused(detail: str) -> Unauthenticated:
    """The 401 for `detail`: a fixed message naming the detail code, nothing of the token."""
    return Unauthenticated(f"{_MESSAGES[detail]} ({detail})")


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Where keys come from and what a token must say (README "Frontend apps")."""

    jwks_url: str | None = None
    jwks_file: Path | None = None
    # Development only; never in a repr.
    secret: str | None = field(default=None, repr=False)
    # The public JWKS of `leadgate dev-token`'s key, trusted under `--demo` only.
    demo_jwks: Mapping[str, Any] | None = None
    issuer: str | None = None
    audience: str | None = None
    organization_claim: str = "org_id"
    role_claim: str = "role"
    leeway_seconds: float = 60.0
    # An unknown `kid` refetches the JWKS at most this often; the set is refetched when older
    # than `max_age_seconds` (a key the provider withdrew stops working).
    refresh_interval_seconds: float = 30.0
    max_age_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSettings:
        return cls(
            jwks_url=settings.jwt_jwks_url,
            jwks_file=settings.jwt_jwks_file,
            secret=settings.jwt_secret,
            demo_jwks=settings.demo_jwks,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            organization_claim=settings.jwt_org_claim,
            role_claim=settings.jwt_role_claim,
            leeway_seconds=settings.jwt_leeway_seconds,
            refresh_interval_seconds=settings.jwt_jwks_refresh_seconds,
            max_age_seconds=settings.jwt_jwks_max_age_seconds,
        )

    @property
    def enabled(self) -> bool:
        sources = (self.jwks_url, self.jwks_file, self.secret, self.demo_jwks)
        return any(source is not None for source in sources)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a verified token says; `expires_at` is its `exp` (seconds since the epoch)."""

    organization_id: UUID
    role: Role
    subject: str
    expires_at: float


class KeySet:
    """The JWKS signing keys by `kid`: fetched on first use, refetched when an unknown `kid`
    arrives (at most once per refresh interval) or the set is older than its maximum age.

    A failed fetch keeps serving the keys already held (the identity provider being down
    does not sign everyone out); with none held yet it is SERVICE_UNAVAILABLE (retryable),
    not a verdict on the token.
    """

    def __init__(
        self, settings: TokenSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded = False
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._kid_refreshed_at: float | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def find(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None and not self._stale():
            return key
        async with self._lock:
            # Rechecked under the lock: another request may have refreshed meanwhile.
            if (not self._loaded or self._stale()) and self._may_retry():
                await self._refresh()
            elif kid not in self._keys and self._may_refresh_for_kid():
                self._kid_refreshed_at = self._clock()
                await self._refresh()
        if not self._loaded:
            raise ServiceUnavailable("The identity provider's signing keys cannot be fetched")
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._clock() - self._fetched_at >= self._settings.max_age_seconds

    def _may_retry(self) -> bool:
        # A provider that is down is asked again at most once per interval.
        return self._attempted_at is None or self._since(self._attempted_at)

    def _may_refresh_for_kid(self) -> bool:
        # Unknown kids are the client's to choose: they cost the provider one fetch per interval.
        return self._kid_refreshed_at is None or self._since(self._kid_refreshed_at)

    def _since(self, then: float) -> bool:
        return self._clock() - then >= self._settings.refresh_interval_seconds

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        try:
            documents = await self._documents()
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # Served stale: the keys held so far stay trusted until a fetch succeeds.
            log.warning("could not load the JWKS (%s); keeping %d keys", exc, len(self._keys))
            return
        self._keys = {kid: key for document in documents for kid, key in _usable(document)}
        self._loaded = True
        self._fetched_at = self._clock()

    async def _documents(self) -> list[Mapping[str, Any]]:
        settings = self._settings
        documents: list[Mapping[str, Any]] = []
        if settings.demo_jwks is not None:
            documents.append(settings.demo_jwks)
        if settings.jwks_file is not None:
            documents.append(_object(settings.jwks_file.read_bytes()))
        if settings.jwks_url is not None:
            documents.append(await self._fetch(settings.jwks_url))
        return documents

    async def _fetch(self, url: str) -> Mapping[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=_FETCH_TIMEOUT_SECONDS)
            )
        # The configured URL only: a redirect could point the gateway anywhere.
        async with self._session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise ValueError(f"the JWKS URL answered {response.status}")
            body = await response.content.read(_MAX_JWKS_BYTES + 1)
        if len(body) > _MAX_JWKS_BYTES:
            raise ValueError("the JWKS document is too large")
        return _object(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _object(body: bytes) -> Mapping[str, Any]:
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("a JWKS is a JSON object")
    return document


def _usable(document: Mapping[str, Any]) -> list[tuple[str, jwt.PyJWK]]:
    """The signing keys of one JWKS with a `kid` and an accepted algorithm; others skipped."""
    keys = document.get("keys")
    usable: list[tuple[str, jwt.PyJWK]] = []
    for entry in keys if isinstance(keys, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            log.warning("skipping a JWKS key that cannot be used (kid %r)", kid)
            continue
        if isinstance(kid, str) and key.algorithm_name in KEY_ALGORITHMS:
            usable.append((kid, key))
    return usable


class TokenVerifier:
    """Verifies a JWT and reads its organization, role and subject (no database here: the
    organization is checked by the Authenticator, after the signature)."""

    def __init__(self, settings: TokenSettings, keys: KeySet | None = None) -> None:
        self.settings = settings
        self._keys = KeySet(settings) if keys is None else keys
        if settings.secret is not None:
            # Anyone holding the shared secret can mint a token for any organization.
            log.warning("HS256 bearer tokens are accepted (LEADGATE_JWT_SECRET): development only")

    async def verify(self, token: str) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise refused(MALFORMED) from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == HMAC_ALGORITHM and self.settings.secret is not None:
            key = self.settings.secret
        elif isinstance(algorithm, str) and algorithm in KEY_ALGORITHMS:
            kid = header.get("kid")
            found = await self._keys.find(kid) if isinstance(kid, str) else None
            if found is None:
                raise refused(UNKNOWN_KEY)
            if found.algorithm_name != algorithm:
                raise refused(ALGORITHM_REFUSED)
            key = found.key
        else:
            raise refused(ALGORITHM_REFUSED)
        claims = self._decode(token, key, algorithm)
        return _principal_claims(claims, self.settings)

    def check_expiry(self, verified: VerifiedToken) -> None:
        """A token verified earlier (and cached) that has since expired is refused."""
        if time.time() >= verified.expires_at + self.settings.leeway_seconds:
            raise refused(EXPIRED)

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        settings = self.settings
        required = ["exp"]
        required += ["iss"] if settings.issuer is not None else []
        required += ["aud"] if settings.audience is not None else []
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={
                    "require": required,
                    "verify_aud": settings.audience is not None,
                    # Short RSA keys and HMAC secrets are refused, not warned about.
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.ExpiredSignatureError:
            raise refused(EXPIRED) from None
        except jwt.ImmatureSignatureError:
            raise refused(NOT_YET_VALID) from None
        except jwt.InvalidIssuerError:
            raise refused(WRONG_ISSUER) from None
        except jwt.InvalidAudienceError:
            raise refused(WRONG_AUDIENCE) from None
        except jwt.MissingRequiredClaimError:
            raise refused(MISSING_CLAIM) from None
        except jwt.InvalidSignatureError:
            raise refused(BAD_SIGNATURE) from None
        except (jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
            raise refused(ALGORITHM_REFUSED) from None
        except jwt.PyJWTError:
            raise refused(MALFORMED) from None

    async def close(self) -> None:
        await self._keys.close()


def claim(claims: Mapping[str, Any], path: str) -> object:
    """The claim at `path`: a top-level name (namespaced ones such as
    `https://example.com/org_id` contain dots) or else a dotted path into nested objects."""
    if path in claims:
        return claims[path]
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _principal_claims(claims: Mapping[str, Any], settings: TokenSettings) -> VerifiedToken:
    subject = claims.get("sub")
    organization = claim(claims, settings.organization_claim)
    if not isinstance(subject, str) or not subject or organization is None:
        raise refused(MISSING_CLAIM)
    organization_id = parse_uuid(organization) if isinstance(organization, str) else None
    role = _role(claim(claims, settings.role_claim))
    if organization_id is None or role is None:
        raise refused(BAD_CLAIM)
    return VerifiedToken(
        organization_id=organization_id,
        role=role,
        subject=subject,
        expires_at=float(claims["exp"]),
    )


def _role(value: object) -> Role | None:
    """No role claim means the least one (viewer); a list grants its highest known role; an
    unknown role is refused rather than guessed."""
    if value is None:
        return "viewer"
    names = value if isinstance(value, list) else [value]
    known = [role for role in ROLES if role in names]
    if not known:
        return None
    return known[-1]
