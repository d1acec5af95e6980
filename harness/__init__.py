"""Everything that is not a variant: data, task, running, measuring, storing, reporting."""
