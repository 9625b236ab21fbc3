"""What every ``circuit-atlas`` command shares: parameter parsing, table output, the store."""

from __future__ import annotations

import json
from typing import Any

import click
import pandas as pd

from circuit_atlas.store import CircuitStore, ConnectionSettings


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` → (k, v); v is read as JSON when it parses (numbers, lists, true), else a string."""
    if "=" not in text:
        raise click.BadParameter(f"{text!r} is not of the form name=value", param_hint="--param")
    name, raw = text.split("=", 1)
    if not name.isidentifier():
        raise click.BadParameter(f"{name!r} is not a parameter name", param_hint="--param")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def print_table(frame: pd.DataFrame, fmt: str = "table") -> None:
    if fmt == "json":
        click.echo(frame.to_json(orient="records", default_handler=str))
    elif fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif frame.empty:
        click.echo("(no rows)")
    else:
        with pd.option_context(
            "display.max_rows",
            200,
            "display.max_columns",
            20,
            "display.width",
            160,
            "display.max_colwidth",
            60,
        ):
            click.echo(frame.to_string(index=False))


class StoreContext:
    """Lazily opened store shared by one command invocation."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._store: CircuitStore | None = None

    def store(self) -> CircuitStore:
        if self._store is None:
            self._store = CircuitStore.open(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_ctx = click.make_pass_decorator(StoreContext)


def selection_options(command: click.Command) -> click.Command:
    """GRAPH_IDS… or --contains/--model, and --allow-mixed: how multi-graph commands pick graphs."""
    command = click.option("--allow-mixed", is_flag=True, help="Allow graphs of different models.")(
        command
    )
    command = click.option("--model", help="Select every stored graph of this model.")(command)
    command = click.option("--contains", help="Select every stored graph whose id contains this.")(
        command
    )
    return click.argument("graph_ids", nargs=-1)(command)
