"""The `report`, `compare` and `export-tensorboard` commands of `mlpbench`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `mlpbench` parser; each sets `func(args) -> int`."""
