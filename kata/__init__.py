"""The concurrency kata's tooling: pytest plugin, CLI, spec reader and reports."""

__version__ = "0.1.0"
