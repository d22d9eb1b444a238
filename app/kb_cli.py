"""``flask kb import FILE.jsonl`` and ``flask kb export``: move articles in and out."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app import kb_editing

kb = AppGroup("kb", help="Import and export knowledge-base articles (JSONL).")


@kb.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"))
def import_command(source) -> None:
    """Import articles from a JSONL file: valid lines in one transaction, bad lines listed.

    An article whose id (slug) exists gets a new version only if its content changed.
    Exits non-zero if any line was rejected.
    """
    try:
        text = source.read()
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{source.name} is not UTF-8 text: {exc.reason}") from exc
    report = kb_editing.import_text(text)
    click.echo(
        f"{len(report.created)} created, {len(report.new_versions)} new versions, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.errors)} rejected"
    )
    for error in report.errors:
        click.echo(f"line {error.line}: {error.message}", err=True)
    if report.errors:
        raise SystemExit(1)


@kb.command("export")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-",
              help="Write to this file instead of standard output.")
@click.option("--status", type=click.Choice(["draft", "published", "archived"]),
              help="Only articles with this status.")
def export_command(output, status: str | None) -> None:
    """Export every article's current version as JSONL (reads back with ``kb import``)."""
    output.write(kb_editing.export_text(status))
