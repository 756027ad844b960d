"""``smoothcse recipes``: list the built-in recipes, or print one."""

from __future__ import annotations

import click


@click.command()
@click.argument("name", required=False)
def recipes(name: str | None) -> None:
    """List the built-in recipes, or print one (a TOML file you can copy and edit)."""
    from smoothcse.config import recipe_description, recipe_names, recipe_text

    if name:
        click.echo(recipe_text(name), nl=False)
        return
    names = recipe_names()
    width = max(len(n) for n in names)
    for recipe in names:
        click.echo(f"{recipe:<{width}}  {recipe_description(recipe)}")
