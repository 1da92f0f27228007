"""``hotline serve`` runs the relay under uvicorn; ``hotline db upgrade`` migrates its database;
``hotline identity init`` creates the relay key and admin token ahead of a multi-replica start.

Options override ``HOTLINE_*`` environment variables, which override the defaults in
:class:`hotline.relay.settings.RelaySettings`. ``serve`` binds its socket itself, so ``--port 0``
works and the printed URL names the port actually chosen.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Directory for relay.key, admin.token and the SQLite database"),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (postgresql://… or sqlite:///…); default: SQLite in data dir"),
]


def _settings(**options: Any) -> Any:
    from pydantic import ValidationError

    from hotline.relay.settings import RelaySettings

    try:
        return RelaySettings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc


def serve(
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000; 0 picks a free one)")] = None,
    db: DbOpt = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate chain for HTTPS")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key for HTTPS")] = None,
    public_url: Annotated[str | None, typer.Option("--public-url", help="Base URL clients use")] = None,
) -> None:
    """Run the relay."""
    import uvicorn

    from hotline.relay.app import create_app
    from hotline.relay.identity import load_or_create_identity
    from hotline.relay.logging import configure_logging

    settings = _settings(
        data_dir=data_dir,
        host=host,
        port=port,
        db_url=db,
        tls_cert=tls_cert,
        tls_key=tls_key,
        public_url=public_url,
    )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    configure_logging(settings.log_level, settings.log_format)
    identity = load_or_create_identity(settings.data_dir)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        raise typer.BadParameter(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from exc
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=None,  # configure_logging set the levels; uvicorn's own would let frames through
        access_log=False,  # the relay writes its own, with invite codes redacted
        server_header=False,
        proxy_headers=False,
        ws_max_size=settings.socket_max_frame_bytes,
        # No permessage-deflate: frames carry ciphertext, which does not compress, and each socket's
        # zlib state doubled its memory (about 66 KiB instead of 32, docs/PERFORMANCE.md); nor should
        # a token share a compression context with data an attacker may choose.
        ws_per_message_deflate=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )
    scheme = "https" if settings.tls_cert else "http"
    host_text = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    typer.echo(f"hotline relay {identity.relay_id} listening on {scheme}://{host_text}:{settings.port}")
    typer.echo(f"admin token: {identity.admin_token_path}" + (" (new)" if identity.created else ""))
    uvicorn.Server(config).run(sockets=[sock])


def db_upgrade(data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
    """Upgrade the relay database schema to the newest version."""
    from hotline.relay import migrate
    from hotline.relay.db import create_engine

    settings = _settings(data_dir=data_dir, db_url=db)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    async def run() -> None:
        engine = create_engine(settings.database_url())
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("database schema is up to date")


def identity_init(data_dir: DataDirOpt = None) -> None:
    """Create the relay key and admin token in the data dir if missing (mode 0600); print the relay id.

    For deployments that hand the same key to several replicas (docs/OPERATIONS.md): run once, then
    copy ``relay.key`` and ``admin.token`` into the secret store. The token itself is never printed.
    """
    from hotline.relay.identity import load_or_create_identity

    settings = _settings(data_dir=data_dir)
    identity = load_or_create_identity(settings.data_dir)
    typer.echo(f"relay id: {identity.relay_id}")
    typer.echo(
        f"relay key: {(settings.data_dir / 'relay.key').resolve()}" + (" (new)" if identity.created else "")
    )
    typer.echo(f"admin token: {identity.admin_token_path}")


def register(app: typer.Typer) -> None:
    """Add the relay commands to the root app."""
    app.command("serve")(serve)
    db = typer.Typer(help="Relay database commands.", no_args_is_help=True)
    db.command("upgrade")(db_upgrade)
    app.add_typer(db, name="db")
    ident = typer.Typer(help="The relay's own key and admin token.", no_args_is_help=True)
    ident.command("init")(identity_init)
    app.add_typer(ident, name="identity")
