"""Figures (PNG) and the HTML page, built from stored results only: a report never re-runs."""
