"""The version of aioq, importable without loading the package's modules."""

__version__ = "0.1.0"
