"""Relay settings: every size, time and rate limit is a named, documented field (env prefix ``HOTLINE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from hotline.protocol.model import DEFAULT_LIMITS


class RelaySettings(BaseSettings):
    """Configuration of one relay process; ``HOTLINE_<FIELD>`` environment variables override defaults."""

    model_config = SettingsConfigDict(env_prefix="HOTLINE_", extra="forbid")

    # --- where things live -------------------------------------------------------------------------
    data_dir: Path = Field(Path("hotline-data"), description="Directory for relay.key, admin.token, SQLite")
    db_url: str | None = Field(
        None,
        description="SQLAlchemy URL (sqlite+aiosqlite:///… or postgresql+asyncpg://…); "
        "default: SQLite file relay.db in data_dir",
    )
    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port; 0 picks a free one")
    public_url: str | None = Field(
        None, description="Base URL clients use (invite URLs); default: derived from host and port"
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain for HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key for HTTPS")
    auto_migrate: bool = Field(True, description="Upgrade the database schema to head on start")
    serve_web_client: bool = Field(True, description="Serve the browser client (docs/WEB.md) at /")
    web_root: Path | None = Field(
        None, description="Directory of the browser client; default: clients/web of this source tree"
    )

    # --- lifetimes ---------------------------------------------------------------------------------
    token_ttl_s: int = Field(900, ge=1, description="Lifetime of a device token")
    challenge_ttl_s: int = Field(60, ge=1, description="Lifetime of an auth challenge")
    invite_ttl_s: int = Field(86_400, ge=1, description="Default lifetime of an enrollment invite")
    max_invite_ttl_s: int = Field(30 * 86_400, ge=1, description="Longest invite lifetime an admin may ask")
    clock_skew_s: int = Field(
        120, ge=0, description="How far in the future a prekey's not_before may be and still count as valid"
    )
    expired_token_memory_s: int = Field(
        86_400, ge=0, description="How long an expired token is remembered to answer token_expired"
    )

    # --- sizes -------------------------------------------------------------------------------------
    max_request_bytes: int = Field(
        DEFAULT_LIMITS.max_envelope_bytes,
        ge=1024,
        description="Largest HTTP request body; refused before it is read (413 too_large)",
    )
    max_members_per_channel: int = Field(64, ge=1, description="Members in one channel")
    max_prekeys_per_request: int = Field(16, ge=1, description="Signed prekeys in one upload or enrollment")
    max_inbox_page: int = Field(500, ge=1, description="Largest `limit` of GET /inbox")
    max_ack_ids: int = Field(1000, ge=1, description="Ids in one ack (HTTP or socket)")

    # --- WebSocket ---------------------------------------------------------------------------------
    socket_auth_timeout_s: float = Field(10.0, gt=0, description="Time for a socket's first (auth) frame")
    socket_max_frame_bytes: int = Field(64 * 1024, ge=1024, description="Largest frame a client may send")
    socket_max_unacked: int = Field(
        256, ge=1, description="Items sent on a socket and not yet acknowledged before the relay waits"
    )
    socket_stall_timeout_s: float = Field(
        60.0,
        gt=0,
        description="A socket whose unacked window stays full, or whose frame cannot be written, "
        "for this long is closed (4429); the client resumes from its unacked items",
    )
    socket_poll_interval_s: float = Field(
        30.0, gt=0, description="An idle socket looks at its queue this often even without a wake-up"
    )
    max_sockets_per_device: int = Field(4, ge=1, description="Live sockets of one device")
    max_sockets_total: int = Field(10_000, ge=1, description="Live sockets of this process")

    # --- rate limits (token buckets) ---------------------------------------------------------------
    rate_per_s: float = Field(50.0, gt=0, description="Requests (and socket frames) per second per device")
    rate_burst: int = Field(200, ge=1, description="Burst per device")
    address_rate_per_s: float = Field(200.0, gt=0, description="Requests per second per client address")
    address_rate_burst: int = Field(1000, ge=1, description="Burst per client address")
    rate_max_tracked: int = Field(100_000, ge=1, description="Buckets kept in memory (oldest evicted first)")

    # --- background work ---------------------------------------------------------------------------
    tree_head_interval_s: float = Field(2.0, gt=0, description="How often a new tree head is signed")
    housekeeping_interval_s: float = Field(60.0, gt=0, description="How often expired rows are pruned")

    # --- hotline semantics: deadlines, escalation, link tests, check-ins, crisis (docs/adr/0007) -----
    timer_interval_s: float = Field(
        1.0, gt=0, description="How often this process looks for due timers (deadlines, check-ins, tests)"
    )
    timer_batch: int = Field(100, ge=1, description="Timers fired at most per sweep, one transaction each")
    act_max_skew_s: int = Field(
        300, ge=1, description="How far a signed act's at_ms may be from the relay's clock and be accepted"
    )
    test_clock: bool = Field(
        False,
        description="TESTS ONLY: enable POST /v1/admin/test/clock (move this process's clock forward) and "
        "POST /v1/admin/test/sweep (fire due timers now); both answer 404 unless this is set",
    )

    # --- database ----------------------------------------------------------------------------------
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connection pool size")
    sqlite_busy_timeout_ms: int = Field(10_000, ge=0, description="SQLite busy_timeout")
    sqlite_group_commit_max: int = Field(
        32,
        ge=1,
        description="SQLite: most write transactions that share one fsync'd COMMIT (group commit); "
        "writers queued behind a commit join the next one; 1 commits each alone",
    )

    log_level: str = Field("info", description="Python log level of the relay")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text, or as one JSON object each (with the request id)"
    )

    # --- metrics (GET /metrics, docs/OPERATIONS.md) -------------------------------------------------
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token a scraper must send; unset: only loopback peers may scrape"
    )
    metrics_cache_s: float = Field(
        5.0, ge=0, description="Gauges read from the database are refreshed at most this often"
    )
    metrics_queue_cap: int = Field(
        100_000, ge=1, description="Pending inbox items counted per scrape at most (bounds the query)"
    )
    metrics_query_timeout_s: float = Field(
        2.0, gt=0, description="Time limit of the database read behind the gauges"
    )

    def database_url(self) -> str:
        """The URL to connect to: ``db_url``, or the SQLite file in ``data_dir``."""
        if self.db_url:
            return normalize_db_url(self.db_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'relay.db').resolve()}"

    def base_url(self) -> str:
        """The public base URL (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def normalize_db_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite:///`` URLs and pick the async drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
