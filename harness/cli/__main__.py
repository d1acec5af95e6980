"""`python -m harness.cli` is `mlpbench`."""

from harness.cli.main import main

main()
