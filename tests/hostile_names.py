"""A user module whose variant is reached under a name full of rich console markup: Python
allows any string as a module attribute, so `--variant 'tests.hostile_names:[/bold]x[red]'`
imports, and every place that prints the name must print it as written."""

from __future__ import annotations

from variants.numpy_scratch import NumpyScratch


class MarkupNamed(NumpyScratch):
    name = "[/bold]x[red]"
    api_level = "test: [red]markup[/red] in every string"


globals()["[/bold]x[red]"] = MarkupNamed
