"""Web origins (RFC 6454) as browsers send them in `Origin`: the CORS allow-list's terms."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def normalize_origin(text: str) -> str | None:
    """`scheme://host[:port]` as a browser spells it (lower case, default port left out), or
    None for anything that is not an http(s) origin: `null`, a path, credentials, a query."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def is_loopback(origin: str) -> bool:
    """A page served from this machine, on any port (`--demo`'s allowance)."""
    normalized = normalize_origin(origin)
    return normalized is not None and urlsplit(normalized).hostname in LOOPBACK_HOSTS
