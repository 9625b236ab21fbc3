"""What every ``circuit-atlas`` command shares: connection and output options, the store.

Connection options (``--uri``, ``--user``, ``--password``, ``--database``, ``--data-dir``,
``--debug``) are accepted before the sub-command *and* after it: both spellings record into one
``StoreContext``, and a value given after the sub-command wins. ``--format table|csv|json`` is
the one output option of every command that prints data (``--json`` is kept as its alias).

Nothing heavy is imported here: pandas and the store load when a command first uses them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import pandas as pd

    from circuit_atlas.store.circuit_store import CircuitStore
    from circuit_atlas.store.settings import ConnectionSettings

FORMATS = ("table", "csv", "json")
# One default for every command that runs a query (cypher, query): a minute.
QUERY_TIMEOUT_S = 60.0

_DEBUG = {"on": False}


def debug_enabled() -> bool:
    """Whether ``--debug`` was given anywhere on the command line."""
    return _DEBUG["on"]


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose choices are read on first use.

    The registries behind many choices (attribution methods, metrics, comparison metrics) live
    in modules that import torch or pandas; listing their names when the CLI is imported would
    make every command, ``--help`` included, wait for them.
    """

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._loaded: tuple[str, ...] | None = None
        super().__init__((), case_sensitive=True)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        if self._loaded is None:
            self._loaded = tuple(self._load())
        return self._loaded

    @choices.setter
    def choices(self, _value: Any) -> None:  # click.Choice.__init__ assigns it
        pass


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
    """A data frame as an aligned table, CSV or strict JSON records (``tables.py``)."""
    frame = frame.rename(columns=str)
    print_rows(frame.to_dict(orient="records"), fmt, columns=list(frame.columns))


def print_rows(
    rows: Iterable[Mapping[str, Any]], fmt: str = "table", columns: list[str] | None = None
) -> None:
    """Records (dicts) in the chosen format, without pandas (``tables.py``)."""
    from circuit_atlas.cli.tables import rows_text

    text = rows_text(list(rows), fmt, columns)
    click.echo(text, nl=not text.endswith("\n"))


class StoreContext:
    """The connection options of one invocation and the store opened from them, lazily.

    Settings are resolved on first use, so an option given after the sub-command (recorded
    while that command's arguments are parsed) counts as much as one given before it.
    """

    def __init__(self) -> None:
        self.given: dict[str, Any] = {}
        self._settings: ConnectionSettings | None = None
        self._store: CircuitStore | None = None

    def give(self, name: str, value: Any) -> None:
        if self._settings is not None:
            raise RuntimeError("connection options changed after the store was opened")
        self.given[name] = value

    @property
    def settings(self) -> ConnectionSettings:
        if self._settings is None:
            from circuit_atlas.store.settings import ConnectionSettings

            self._settings = ConnectionSettings.resolve(**self.given)
        return self._settings

    def store(self, dataframes: bool = True) -> CircuitStore:
        """The store, opened on first call. ``dataframes=False``: this command sends the driver
        only plain Python values, so a driver not yet imported is imported without its pandas
        support, which saves half a second of start-up (``lean_driver.py``)."""
        if self._store is None:
            if not dataframes:
                from circuit_atlas.cli.lean_driver import import_driver_without_dataframes

                import_driver_without_dataframes()
            from circuit_atlas.store.circuit_store import CircuitStore

            self._store = CircuitStore.open(self.settings)
        return self._store

    def check_can_store(self, graph_id: str, replace: bool) -> None:
        """Before a long job whose result is stored: reach the store now, so a server that is
        down or refuses the credentials fails in seconds rather than after the model ran, and
        say up front when the id is taken (the result is then stored only if identical)."""
        from circuit_atlas.errors import GraphNotFound

        store = self.store()
        if replace:
            return
        try:
            store.graph_info(graph_id)
        except GraphNotFound:
            return
        click.echo(
            f"note: a graph {graph_id!r} is already stored; this run's graph will be stored only "
            "if it is identical (pass --replace to overwrite it, or --graph-id to keep both)",
            err=True,
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_ctx = click.make_pass_decorator(StoreContext, ensure=True)


def _recorder(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def record(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.ensure_object(StoreContext).give(name, value)
        return value

    return record


def _record_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        _DEBUG["on"] = True
    return value


# The connection options besides --debug: (flag, StoreContext field, help).
CONNECTION_OPTIONS = (
    ("--uri", "uri", "Bolt URI of a Neo4j 5 server [env NEO4J_URI]; default: the local server."),
    ("--user", "user", "Database user [env NEO4J_USER]."),
    ("--password", "password", "Database password [env NEO4J_PASSWORD; prefer the variable]."),
    ("--database", "database", "Database name [env NEO4J_DATABASE]; default: the server's."),
    (
        "--data-dir",
        "data_dir",
        "Folder of the local server and artifacts [env CIRCUIT_ATLAS_DATA_DIR].",
    ),
)


def connection_params() -> list[click.Option]:
    """Fresh connection options for one command: ``--uri``, ``--user``, ``--password``,
    ``--database``, ``--data-dir``, ``--debug``; their values go to the ``StoreContext``."""
    options = [
        click.Option(
            [flag],
            type=click.Path(file_okay=False, path_type=Path) if field == "data_dir" else None,
            callback=_recorder(field),
            expose_value=False,
            help=text,
        )
        for flag, field, text in CONNECTION_OPTIONS
    ]
    debug = click.Option(
        ["--debug"],
        is_flag=True,
        callback=_record_debug,
        expose_value=False,
        help="Show tracebacks.",
    )
    return [*options, debug]


def timeout_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--timeout SECONDS`` (parameter ``timeout``), the same default wherever a query runs."""
    return click.option(
        "--timeout",
        type=float,
        default=QUERY_TIMEOUT_S,
        show_default=True,
        help="Seconds; a query still running then is stopped.",
    )(command)


def add_connection_options(command: click.Command) -> None:
    """Give ``command`` (and, for a group, every command under it) the connection options."""
    command.params.extend(connection_params())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_connection_options(sub)


def format_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--format table|csv|json`` (parameter ``out``) and ``--json``, its alias.

    The command receives the resolved choice: ``--json`` means ``json``; with ``--format csv``
    it is a usage error rather than a silent pick.
    """

    @functools.wraps(command)
    def resolved(*args: Any, **kwargs: Any) -> Any:
        as_json = kwargs.pop("as_json")
        if as_json and kwargs["out"] == "csv":
            raise click.UsageError("--json and --format csv contradict each other")
        if as_json:
            kwargs["out"] = "json"
        return command(*args, **kwargs)

    decorated = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(
        resolved
    )
    return click.option(
        "--format",
        "out",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output: an aligned table, CSV or JSON.",
    )(decorated)


def selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """GRAPH_IDS… or --contains/--model, and --allow-mixed: how multi-graph commands pick graphs."""
    command = click.option("--allow-mixed", is_flag=True, help="Allow graphs of different models.")(
        command
    )
    command = click.option("--model", help="Select every stored graph of this model.")(command)
    command = click.option("--contains", help="Select every stored graph whose id contains this.")(
        command
    )
    return click.argument("graph_ids", nargs=-1)(command)
