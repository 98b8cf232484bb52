"""Command-line entry points: parse arguments, call the layers below, map errors to exit codes."""
