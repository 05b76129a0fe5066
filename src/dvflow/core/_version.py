"""The version of dvflow, one place for the package, the record and the CI template."""

__version__ = "0.1.0"
