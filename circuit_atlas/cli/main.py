"""The ``circuit-atlas`` group, its commands and the entry point.

Every command that needs the database opens the store from the connection options
(``--uri/--user/--password/--database/--data-dir``, before or after the sub-command, or
``NEO4J_*``); with no URI it uses the zero-setup local server. Errors are one line on stderr
and a non-zero exit; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import logging

import click

from circuit_atlas.cli.attribute import attribute
from circuit_atlas.cli.compare import compare, consensus
from circuit_atlas.cli.demo import demo
from circuit_atlas.cli.export import export
from circuit_atlas.cli.graphs import cypher, graphs, ingest, rm, show, upgrade
from circuit_atlas.cli.motifs import motifs
from circuit_atlas.cli.options import StoreContext, add_connection_options, debug_enabled
from circuit_atlas.cli.queries import query
from circuit_atlas.cli.roi import roi
from circuit_atlas.cli.scores import prune, score, subgraphs
from circuit_atlas.cli.server import db
from circuit_atlas.cli.train_transcoders import train_transcoders
from circuit_atlas.cli.view import view
from circuit_atlas.process_exit import exit_process


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Circuit Atlas: mechanistic-interpretability circuits in a graph database.

    Connection options (--uri, --user, --password, --database, --data-dir, --debug) go before
    or after the command.
    """
    state = ctx.ensure_object(StoreContext)
    ctx.call_on_close(state.close)


for _command in (
    demo,
    attribute,
    ingest,
    graphs,
    show,
    rm,
    cypher,
    query,
    score,
    subgraphs,
    prune,
    compare,
    consensus,
    roi,
    motifs,
    db,
    upgrade,
    export,
    view,
    train_transcoders,
):
    cli.add_command(_command)
add_connection_options(cli)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors, exit 1 (user errors) or 2 (bugs)."""
    exit_process(_run(argv))


def _run(argv: list[str] | None) -> int:
    from circuit_atlas.errors import CircuitAtlasError

    # The driver logs each retry as a warning; with no handler Python would print them to
    # stderr, burying the one-line error. --debug shows them.
    logging.getLogger("neo4j").addHandler(logging.NullHandler())
    try:
        cli.main(args=argv, prog_name="circuit-atlas", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except CircuitAtlasError as exc:
        if debug_enabled():
            raise
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        if debug_enabled():
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True)
        return 2
    return 0


if __name__ == "__main__":
    main()
