"""Settings, read from the environment once and passed explicitly.

Each setting is declared once, on its `Settings` field: environment variable, default, parser
and description (`setting(...)`). `Settings.from_env` and README's configuration table
(`markdown_table`, rewritten by `make settings-doc`) are both derived from those declarations.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from leadgate.domain.origins import normalize_origin
from leadgate.domain.rate_limits import Rate, parse_rate, show_rate

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

T = TypeVar("T")

# Seconds before each webhook retry: ten attempts over about 23 hours.
DEFAULT_RETRY_SCHEDULE: Final = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0)

# The field metadata key under which a setting's declaration lives.
ENV: Final = "leadgate.env"

TABLE_START: Final = "<!-- settings:start -->"
TABLE_END: Final = "<!-- settings:end -->"


class InvalidSetting(ValueError):
    """An environment variable with a value its setting cannot use (`leadgate` exits 2)."""


@dataclass(frozen=True, slots=True)
class Parser(Generic[T]):
    """Text → value. `read` raises ValueError for text that is not `expects`."""

    expects: str  # completes "<variable> must be …"
    read: Callable[[str], T]
    # The value as the variable spells it: README's default column.
    show: Callable[[T], str]


@dataclass(frozen=True, slots=True)
class Declared:
    """One setting's environment variable; the value type is the field's."""

    name: str
    parser: Parser[Any]
    meaning: str
    # README's default column when the plain default would mislead (e.g. `--demo` changes it).
    default_text: str | None = None
    # A secret's bad value is never echoed in the error (it would reach a terminal or a log).
    secret: bool = False


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _integer(text: str, minimum: int) -> int:
    value = int(text)
    if value < minimum:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def integer(minimum: int = 0) -> Parser[int]:
    return Parser(f"an integer ≥ {minimum}", lambda text: _integer(text, minimum), str)


SECONDS: Final[Parser[float]] = Parser("a number of seconds ≥ 0", _seconds, _number)
SCHEDULE: Final[Parser[tuple[float, ...]]] = Parser(
    "comma-separated seconds ≥ 0",
    lambda text: tuple(_seconds(part) for part in text.split(",")),
    lambda value: ",".join(_number(part) for part in value),
)


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


FLAG: Final[Parser[bool]] = Parser("1 or 0", _flag, lambda value: "1" if value else "0")


def _url(text: str) -> str:
    if not text.startswith(("postgresql://", "postgres://")):
        raise ValueError(text)
    return text


# The value is a secret: a bad one is named but never echoed (see from_env).
DATABASE: Final[Parser[str]] = Parser("a postgresql:// URL", _url, str)
PATH: Final[Parser[Path]] = Parser("a directory", Path, str)


def _http_url(text: str) -> str:
    if not text.startswith(("https://", "http://")):
        raise ValueError(text)
    return text


def _hmac_secret(text: str) -> str:
    # HS256 needs a key at least as long as its hash (RFC 7518 §3.2); PyJWT refuses shorter.
    if len(text.encode()) < 32:
        raise ValueError(text)
    return text


HTTP_URL: Final[Parser[str]] = Parser("an https:// (or http://) URL", _http_url, str)
FILE: Final[Parser[Path]] = Parser("a file path", Path, str)
TEXT: Final[Parser[str]] = Parser("text", str, str)
HMAC_SECRET: Final[Parser[str]] = Parser("at least 32 bytes", _hmac_secret, str)


def _origins(text: str) -> tuple[str, ...]:
    found = []
    for part in text.split(","):
        origin = normalize_origin(part) if part.strip() else None
        if origin is None:
            raise ValueError(part)
        found.append(origin)
    return tuple(dict.fromkeys(found))


ORIGINS: Final[Parser[tuple[str, ...]]] = Parser(
    "comma-separated origins (`https://app.example.com`)", _origins, ",".join
)


RATE: Final[Parser[Rate]] = Parser(
    "`RATE` or `RATE,BURST`: points per second > 0 and the bucket they refill (≥ 1)",
    parse_rate,
    show_rate,
)


def _redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(text)
    return text


# The value is a secret (it may carry a password): named, never echoed.
REDIS: Final[Parser[str]] = Parser("a redis://, rediss:// or unix:// URL", _redis_url, str)


def _nats_url(text: str) -> str:
    if not text.startswith(("nats://", "tls://")):
        raise ValueError(text)
    return text


# A secret too (it may carry a token or password).
NATS: Final[Parser[str]] = Parser("a nats:// or tls:// URL", _nats_url, str)


def choice(*options: str) -> Parser[str]:
    def read(text: str) -> str:
        if text not in options:
            raise ValueError(text)
        return text

    return Parser(" or ".join(options), read, str)


def setting(
    default: T,
    env: str,
    parser: Parser[T],
    meaning: str,
    *,
    default_text: str | None = None,
    repr: bool = True,
) -> T:
    """A Settings field read from `env`; an unset or empty variable keeps `default`."""
    declared = Declared(env, parser, meaning, default_text, secret=not repr)
    return field(default=default, repr=repr, metadata={ENV: declared})


def optional_setting(env: str, parser: Parser[T], meaning: str, *, repr: bool = True) -> T | None:
    """A setting whose default is unset (None)."""
    declared = Declared(env, parser, meaning, "unset", secret=not repr)
    return field(default=None, repr=repr, metadata={ENV: declared})


@dataclass(frozen=True, slots=True)
class Settings:
    # repr=False: a DATABASE_URL may carry a password and must never reach a log.
    database_url: str | None = optional_setting(
        "DATABASE_URL",
        DATABASE,
        "PostgreSQL ≥ 15 to use; unset → embedded server (pgserver)",
        repr=False,
    )
    # The listener's LISTEN and the migration lock are session state a transaction-mode
    # pooler cannot keep: they bypass it (README "Running in production", issue 13 #2).
    direct_database_url: str | None = optional_setting(
        "LEADGATE_DIRECT_DATABASE_URL",
        DATABASE,
        "PostgreSQL itself when DATABASE_URL is a pooler (PgBouncer): for LISTEN and the "
        "migration lock; unset → DATABASE_URL",
        repr=False,
    )
    # Top-level lead reads tolerate a second of lag; writes and read-your-write paths do not
    # (services/leads.py, docs/scale-out.md, issue 13 #4).
    read_database_url: str | None = optional_setting(
        "LEADGATE_READ_DATABASE_URL",
        DATABASE,
        "a read replica for `leads`/`lead`/`leadsConnection` and GET /v1/leads(/{id}) (a "
        "second pool); everything else stays on DATABASE_URL; unset → DATABASE_URL",
        repr=False,
    )
    # Events over NATS JetStream instead of LISTEN/NOTIFY (events/nats_bus.py, issue 13 #3).
    event_bus: str | None = optional_setting(
        "LEADGATE_EVENT_BUS",
        NATS,
        "NATS JetStream server(s) for events (comma-separated): writes stop NOTIFYing, a relay "
        "publishes the outbox; unset → LISTEN/NOTIFY",
        repr=False,
    )
    pgbouncer: bool | None = optional_setting(
        "LEADGATE_PGBOUNCER",
        FLAG,
        "`1`: DATABASE_URL is a transaction-mode pooler (no prepared statements kept, no "
        "session settings at connect; needs LEADGATE_DIRECT_DATABASE_URL); unset → on when "
        "LEADGATE_DIRECT_DATABASE_URL is set",
    )
    data_dir: Path = setting(
        Path(".leadgate"),
        "LEADGATE_DATA_DIR",
        PATH,
        "where the embedded server keeps its data (`<dir>/pg`)",
    )
    pool_min_size: int = setting(
        2, "LEADGATE_POOL_MIN", integer(0), "connections a process's pool keeps open"
    )
    pool_max_size: int = setting(
        10, "LEADGATE_POOL_MAX", integer(1), "connections a process's pool may open"
    )
    # Upper bound on how long a revoked key keeps working in another process.
    api_key_cache_seconds: float = 4.0
    # SIGTERM: how long in-flight requests (and WebSocket close handshakes) may take.
    shutdown_timeout_seconds: float = setting(
        10.0,
        "LEADGATE_SHUTDOWN_TIMEOUT",
        SECONDS,
        "seconds in-flight requests may take to finish after SIGTERM",
    )
    statement_timeout_ms: int = setting(
        15_000,
        "LEADGATE_STATEMENT_TIMEOUT_MS",
        integer(0),
        "server-side statement timeout in milliseconds (`0`: none)",
    )
    # How long a write waits for a row another write holds (same lead, same idempotency key)
    # before answering with a typed error instead of hanging.
    lock_timeout_ms: int = setting(
        2_000,
        "LEADGATE_LOCK_TIMEOUT_MS",
        integer(0),
        "milliseconds a write waits for a row another write holds (same lead, same "
        "idempotency key) before a typed error",
    )
    idempotency_ttl_seconds: float = 24 * 3600
    graphql_ws_legacy: bool = setting(
        False,
        "LEADGATE_GRAPHQL_WS_LEGACY",
        FLAG,
        "`1` also accepts the legacy `graphql-ws` subscription protocol",
    )
    access_log: bool = setting(
        False,
        "LEADGATE_ACCESS_LOG",
        FLAG,
        "`1` logs every request (method, path, status, time, request id)",
    )
    # "json": one JSON object per log line (leadgate/logs.py).
    log_format: str = setting(
        "text",
        "LEADGATE_LOG_FORMAT",
        choice("text", "json"),
        "`json`: one JSON object per log line (see Metrics and logs)",
    )
    # /metrics answers loopback clients only unless this is set (it reveals traffic and load).
    metrics_public: bool = setting(
        False,
        "LEADGATE_METRICS_PUBLIC",
        FLAG,
        "`1` serves `/metrics` to any client; otherwise loopback only",
    )
    # None: OpenTelemetry's own variables decide (leadgate/tracing.py).
    tracing: bool | None = optional_setting(
        "LEADGATE_TRACING",
        FLAG,
        "`1` traces requests, SQL and webhook sends (needs `leadgate[otel]`); `0` never; "
        "unset: on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set",
    )
    # Run queries through compiled plans (graphql/compiled.py); off = strawberry only.
    compiled_queries: bool = setting(
        True,
        "LEADGATE_COMPILED_QUERIES",
        FLAG,
        "`0` runs every query through strawberry's own executor (see Performance)",
    )
    # Webhooks: http and loopback targets only for local development (SSRF otherwise).
    allow_insecure_webhooks: bool = setting(
        False,
        "LEADGATE_ALLOW_INSECURE_WEBHOOKS",
        FLAG,
        "`1` allows `http` and loopback webhook targets (local development only)",
        default_text="`0` (`1` under `--demo`)",
    )
    # Seconds before each retry; attempts = len + 1. The default spans about a day.
    webhook_retry_schedule: tuple[float, ...] = setting(
        DEFAULT_RETRY_SCHEDULE,
        "LEADGATE_WEBHOOK_RETRY_SCHEDULE",
        SCHEDULE,
        "seconds before each webhook retry (attempts: one more than the entries)",
    )
    webhook_timeout_seconds: float = setting(
        10.0, "LEADGATE_WEBHOOK_TIMEOUT", SECONDS, "seconds per webhook delivery attempt"
    )
    # A claimed delivery is retried by any dispatcher once its lease ends (a killed process).
    webhook_lease_seconds: float = setting(
        60.0,
        "LEADGATE_WEBHOOK_LEASE",
        SECONDS,
        "seconds a dispatcher holds a claimed delivery before any other may retry it",
    )
    webhook_concurrency: int = 32
    # After rotateWebhookSecret the previous secret keeps signing beside the new one this long
    # (Standard Webhooks: receivers switch over without dropping a delivery).
    webhook_secret_overlap_seconds: float = setting(
        24 * 3600.0,
        "LEADGATE_WEBHOOK_SECRET_OVERLAP",
        SECONDS,
        "seconds the replaced secret keeps signing after `rotateWebhookSecret`",
    )
    # Resolves webhook hosts underneath the SSRF vetting; None = the system resolver. Tests
    # answer with addresses they choose.
    webhook_resolver: AbstractResolver | None = field(default=None, repr=False, compare=False)
    dispatcher_enabled: bool = setting(
        True,
        "LEADGATE_DISPATCHER",
        FLAG,
        "`0` runs this process without a webhook dispatcher",
    )
    # Off by default: bench/RESULTS.md measured uvloop at 0.95-0.99x asyncio's loop on the list
    # query (2026-12-04); the setting stays for deployments that measure otherwise.
    uvloop: bool = setting(
        False,
        "LEADGATE_UVLOOP",
        FLAG,
        "`1`: `leadgate serve` runs on uvloop's event loop where it is installed (Linux, "
        "macOS); by default asyncio's own",
    )
    graphiql_api_key: str | None = field(default=None, repr=False)
    # Abuse limits, all checked before any SQL runs (README "Limits").
    max_body_bytes: int = setting(
        1024 * 1024,
        "LEADGATE_MAX_BODY_BYTES",
        integer(1),
        "request body (413 `PAYLOAD_TOO_LARGE`)",
    )
    max_import_bytes: int = setting(
        64 * 1024 * 1024,
        "LEADGATE_MAX_IMPORT_BYTES",
        integer(1),
        "an import file (`POST /v1/imports`, in place of the body limit; 413 `PAYLOAD_TOO_LARGE`)",
    )
    max_header_bytes: int = setting(
        8 * 1024,
        "LEADGATE_MAX_HEADER_BYTES",
        integer(1),
        "one header; all headers together: 4× (431 `HEADERS_TOO_LARGE`). aiohttp's parser "
        "refuses lines over 64 KiB itself, answered in the envelope too",
    )
    max_document_tokens: int = setting(
        5_000,
        "LEADGATE_MAX_TOKENS",
        integer(1),
        "tokens in a GraphQL document, counted by the lexer before parsing",
    )
    max_depth: int = setting(10, "LEADGATE_MAX_DEPTH", integer(1), "selection depth")
    max_aliases: int = setting(30, "LEADGATE_MAX_ALIASES", integer(0), "aliases in a document")
    max_cost: int = setting(
        50_000,
        "LEADGATE_MAX_COST",
        integer(1),
        "cost budget: each field costs 1, and a field sized by `limit`/`first`/`last` counts "
        "its selection that many times (its default when left out); other lists count it once",
    )
    # Totals of searched and filtered lists (README "GraphQL", store/leads.py, issue 14 #4).
    exact_total_limit: int = setting(
        1_000,
        "LEADGATE_EXACT_TOTAL_LIMIT",
        integer(0),
        "a searched or filtered list's `total` is counted exactly up to this many leads; past "
        "it (or when the planner expects over 10× as many) it is the planner's estimate, and "
        "`totalIsExact` says which",
    )
    # Persisted documents (README "Persisted documents", graphql/persisted.py).
    trusted_documents: str = setting(
        "off",
        "LEADGATE_TRUSTED_DOCUMENTS",
        choice("off", "only"),
        "`only` runs only documents loaded with `leadgate documents add` (by hash or "
        "`documentId`): any other is `PERSISTED_QUERY_REQUIRED`; `off` also runs free text "
        "and registers APQ documents",
    )
    persisted_get_max_age: int = setting(
        0,
        "LEADGATE_PERSISTED_GET_MAX_AGE",
        integer(0),
        "`max-age` (seconds) of `Cache-Control: private` on a query run by its hash over GET; "
        "0: the client revalidates each time (`ETag`, 304)",
    )
    # GraphiQL needs both; a locked-down production API may turn them off.
    introspection: bool = setting(
        True,
        "LEADGATE_INTROSPECTION",
        FLAG,
        "`0` refuses `__schema`/`__type` (GraphiQL needs them)",
    )
    suggestions: bool = setting(
        True,
        "LEADGATE_SUGGESTIONS",
        FLAG,
        '`0` drops "Did you mean …?" from validation messages',
    )
    # End-user tokens (README "Frontend apps", services/tokens.py). With none of the URL, file
    # or secret set (and no --demo) only API keys authenticate.
    jwt_jwks_url: str | None = optional_setting(
        "LEADGATE_JWT_JWKS_URL",
        HTTP_URL,
        "the identity provider's JWKS (RS256, ES256, EdDSA keys) that verifies bearer tokens; "
        "cached, refetched for an unknown `kid`, kept while the provider is down",
    )
    jwt_jwks_file: Path | None = optional_setting(
        "LEADGATE_JWT_JWKS_FILE",
        FILE,
        "a JWKS file that verifies bearer tokens (beside or instead of the URL), reread with it",
    )
    jwt_secret: str | None = optional_setting(
        "LEADGATE_JWT_SECRET",
        HMAC_SECRET,
        "HS256 shared secret for bearer tokens: development only",
        repr=False,
    )
    jwt_issuer: str | None = optional_setting(
        "LEADGATE_JWT_ISSUER", TEXT, "the `iss` every bearer token must carry"
    )
    jwt_audience: str | None = optional_setting(
        "LEADGATE_JWT_AUDIENCE", TEXT, "the `aud` every bearer token must carry"
    )
    jwt_org_claim: str = setting(
        "org_id",
        "LEADGATE_JWT_ORG_CLAIM",
        TEXT,
        "the claim holding the organization id: a claim name, or a dotted path into objects",
    )
    jwt_role_claim: str = setting(
        "role",
        "LEADGATE_JWT_ROLE_CLAIM",
        TEXT,
        "the claim holding `viewer`, `editor` or `admin` (or a list of them; absent: viewer)",
    )
    jwt_leeway_seconds: float = setting(
        60.0, "LEADGATE_JWT_LEEWAY", SECONDS, "clock skew allowed on a token's `exp` and `nbf`"
    )
    jwt_jwks_refresh_seconds: float = setting(
        30.0,
        "LEADGATE_JWT_JWKS_REFRESH",
        SECONDS,
        "an unknown `kid` refetches the JWKS at most this often",
    )
    jwt_jwks_max_age_seconds: float = setting(
        300.0,
        "LEADGATE_JWT_JWKS_MAX_AGE",
        SECONDS,
        "seconds a fetched JWKS is used before it is fetched again (a withdrawn key stops)",
    )
    # The public JWKS of `leadgate dev-token`'s key: trusted, and served at
    # /.well-known/jwks.json, under `serve --demo` only (never from the environment).
    demo_jwks: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    # Browser apps on these origins may call /graphql and /v1 and open WebSockets (cors.py).
    cors_origins: tuple[str, ...] = setting(
        (),
        "LEADGATE_CORS_ORIGINS",
        ORIGINS,
        "origins of the browser apps allowed to call `/graphql` and `/v1` (CORS) and open "
        "WebSockets; exact `scheme://host[:port]`",
        default_text="none (`--demo`: any `http://localhost:*`, `http://127.0.0.1:*`)",
    )
    # `serve --demo`: any loopback origin (a board served on another local port), never set
    # from the environment.
    cors_loopback: bool = False

    # Rate limits (README "Rate limits", services/rate_limits.py). Unset: no limit of that
    # kind, except keys created with `--rate`.
    rate_per_credential: Rate | None = optional_setting(
        "LEADGATE_RATE_PER_CREDENTIAL",
        RATE,
        "token bucket of each API key and each token subject: a REST request costs 1 point, "
        "a GraphQL operation its cost; `api-key create --rate` overrides it per key",
    )
    rate_per_organization: Rate | None = optional_setting(
        "LEADGATE_RATE_PER_ORGANIZATION",
        RATE,
        "token bucket shared by all the credentials of one organization (points as above)",
    )
    redis_url: str | None = optional_setting(
        "LEADGATE_REDIS_URL",
        REDIS,
        "Redis that holds the rate-limit buckets, shared by every process; unset: each "
        "process counts on its own. Unreachable: each process limits on its own meanwhile",
        repr=False,
    )

    @property
    def behind_pooler(self) -> bool:
        """Whether DATABASE_URL leads to a transaction-mode pooler rather than PostgreSQL."""
        if self.pgbouncer is not None:
            return self.pgbouncer
        return self.direct_database_url is not None

    @property
    def writes_notify(self) -> bool:
        """Whether writes NOTIFY the gateways' listeners: not with an event bus, whose relay
        reads lead_events instead (issue 13 #3)."""
        return self.event_bus is None

    @property
    def embedded_pgdata(self) -> Path:
        return self.data_dir / "pg"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every declared variable that is set and not empty; InvalidSetting names a bad one."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, declared in declarations():
            text = env.get(declared.name, "").strip()
            if not text:
                continue
            try:
                values[name] = declared.parser.read(text)
            except ValueError:
                got = "" if declared.secret else f", got {text!r}"
                raise InvalidSetting(
                    f"{declared.name} must be {declared.parser.expects}{got}"
                ) from None
        if values.get("pgbouncer") and "direct_database_url" not in values:
            # LISTEN and the migration lock would go through the pooler and break there.
            raise InvalidSetting(
                "LEADGATE_PGBOUNCER=1 needs LEADGATE_DIRECT_DATABASE_URL (PostgreSQL itself)"
            )
        return cls(**values)


def declarations() -> Iterator[tuple[str, Declared]]:
    """(field name, declaration) of every setting read from the environment, in field order."""
    for each in fields(Settings):
        declared = each.metadata.get(ENV)
        if isinstance(declared, Declared):
            yield each.name, declared


def default_text(name: str, declared: Declared) -> str:
    """README's default column: the value as the variable would spell it."""
    if declared.default_text is not None:
        return declared.default_text
    return f"`{declared.parser.show(getattr(Settings(), name))}`"


def markdown_table() -> str:
    """README's configuration table, one row per environment variable."""
    rows = ["| variable | value | default | meaning |", "|---|---|---|---|"]
    for name, declared in declarations():
        cells = (
            f"`{declared.name}`",
            declared.parser.expects,
            default_text(name, declared),
            declared.meaning,
        )
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def with_table(readme: str) -> str:
    """`readme` with the text between the settings markers replaced by `markdown_table()`."""
    before, start, rest = readme.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"no {TABLE_START} … {TABLE_END} pair")
    return f"{before}{TABLE_START}\n{markdown_table()}{TABLE_END}{after}"


if __name__ == "__main__":
    # `make settings-doc`: python -m leadgate.config README.md
    for readme in map(Path, sys.argv[1:]):
        readme.write_text(with_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
