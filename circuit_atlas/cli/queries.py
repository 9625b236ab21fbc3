"""``circuit-atlas query``: list, describe and run the named Cypher queries in ``queries/``."""

from __future__ import annotations

import click

from circuit_atlas.cli.options import (
    StoreContext,
    format_option,
    pass_ctx,
    print_rows,
    print_table,
    timeout_option,
)


@click.command()
@click.argument("name", required=False)
@click.option("--list", "list_queries", is_flag=True, help="List the named queries.")
@click.option("--describe", is_flag=True, help="Show the query's parameters, columns and text.")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="Repeatable.")
@format_option
@timeout_option
@pass_ctx
def query(
    state: StoreContext,
    name: str | None,
    list_queries: bool,
    describe: bool,
    params: tuple[str, ...],
    out: str,
    timeout: float,
) -> None:
    """Run the named query NAME (read-only) with --param values; --list shows them all."""
    from circuit_atlas.queries.library import QueryError, coerce_text, get_query, library, run_query

    if list_queries or name is None:
        rows = [{"query": q.name, "purpose": q.purpose} for q in library().values()]
        print_rows(rows, out)
        return
    named = get_query(name)
    if describe:
        click.echo(f"{named.name}: {named.purpose}\n")
        if named.description:
            click.echo(named.description + "\n")
        for parameter in named.parameters:
            click.echo(f"  --param {parameter.describe()}")
        click.echo(f"\ncolumns: {', '.join(named.columns)}\n\n{named.body}")
        return
    values = {}
    for item in params:
        if "=" not in item:
            raise QueryError(f"--param {item!r} is not of the form name=value")
        key, text = item.split("=", 1)
        values[key] = coerce_text(named, key, text)
    frame = run_query(state.store(), name, values, timeout_s=timeout)
    print_table(frame, out)
