"""The `mlpbench` commands: parse, validate, call one part, print."""
