"""Command line: the `hotline` console script and its subcommands."""
