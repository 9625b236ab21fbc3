"""``circuit-atlas db``: start, stop or inspect the shared local graph server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from circuit_atlas.cli.options import StoreContext, pass_ctx

# How long `db start` and `db stop` wait for the server (a JVM start is 10-30 s on 2 cores).
SERVER_WAIT_S = 120.0


@click.group()
def db() -> None:
    """Start, stop or inspect the local graph server (used when no --uri is given)."""


def _data_dir(state: StoreContext) -> Path:
    from circuit_atlas.local_server import default_data_dir

    return state.settings.data_dir or default_data_dir()


@db.command("start")
@click.option(
    "--timeout", type=float, default=SERVER_WAIT_S, show_default=True, help="Seconds to wait."
)
@pass_ctx
def db_start(state: StoreContext, timeout: float) -> None:
    """Start a shared local server in the background, so several commands can use it."""
    from circuit_atlas.errors import LocalServerError
    from circuit_atlas.local_server import running_shared_server

    data_dir = _data_dir(state)
    endpoint = running_shared_server(data_dir)
    if endpoint is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(data_dir / "serve.out", "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "circuit_atlas.cli",
                    "db",
                    "serve",
                    "--data-dir",
                    str(data_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while (endpoint := running_shared_server(data_dir)) is None:
            if process.poll() is not None:
                raise LocalServerError(
                    f"local server exited during start (see {data_dir / 'serve.out'})"
                )
            if time.monotonic() > deadline:
                process.terminate()
                raise LocalServerError(f"local server did not start within {timeout:.0f} s")
            time.sleep(0.2)
    click.echo(f"running: {endpoint.uri} user {endpoint.user} database {endpoint.database}")
    click.echo(f"data:    {data_dir} (password in {data_dir / 'password'})")


@db.command("serve")
@pass_ctx
def db_serve(state: StoreContext) -> None:
    """Run the local server in the foreground until interrupted (what `db start` runs)."""
    from circuit_atlas.local_server import LocalServer, read_password
    from circuit_atlas.store import CircuitStore
    from circuit_atlas.store.bulk_channel import BulkService

    data_dir = _data_dir(state)
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = LocalServer(data_dir)
    server.start()
    bulk = BulkService(server, server.data_dir, read_password(server.data_dir))
    try:
        store = CircuitStore(*_store_args(server))
        store.ensure_schema()
        store.remove_interrupted_loads()
        store.close()
        bulk.start()  # before announcing: a command that finds the server finds the channel
        server.announce()
        click.echo(f"serving {server.endpoint.uri} for {data_dir}", err=True)
        while not stop["now"]:
            time.sleep(0.2)
    finally:
        bulk.stop()
        server.stop()


def _store_args(server: Any) -> tuple[Any, ...]:
    from neo4j import GraphDatabase

    endpoint = server.endpoint
    driver = GraphDatabase.driver(endpoint.uri, auth=(endpoint.user, endpoint.password))
    return (
        driver,
        endpoint.database,
        server.data_dir / "artifacts",
        endpoint.uri,
        endpoint.user,
        server,
        False,
    )


@db.command("stop")
@click.option(
    "--timeout", type=float, default=SERVER_WAIT_S, show_default=True, help="Seconds to wait."
)
@pass_ctx
def db_stop(state: StoreContext, timeout: float) -> None:
    """Stop the shared local server."""
    from circuit_atlas.errors import LocalServerError
    from circuit_atlas.local_server import _pid_alive, running_shared_server

    data_dir = _data_dir(state)
    info_path = data_dir / "server.json"
    if running_shared_server(data_dir) is None:
        click.echo("not running")
        return
    pid = int(json.loads(info_path.read_text())["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            raise LocalServerError(f"local server (process {pid}) did not stop in {timeout} s")
        time.sleep(0.2)
    click.echo("stopped")


@db.command("status")
@pass_ctx
def db_status(state: StoreContext) -> None:
    """Say whether the shared local server is running, and where."""
    from circuit_atlas.local_server import running_shared_server

    data_dir = _data_dir(state)
    endpoint = running_shared_server(data_dir)
    if endpoint is None:
        click.echo(f"not running (data: {data_dir})")
    else:
        click.echo(f"running: {endpoint.uri} database {endpoint.database} (data: {data_dir})")
