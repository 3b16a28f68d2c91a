"""A module that fails on import, for the CLI's import-error message."""

raise RuntimeError("this module is broken on purpose")
