"""The error of a source declaration that cannot work, importable without importing the sources.

`api2snow.sources` checks every declaration while it is imported; whatever imports it (a handler, the CLI)
can catch this by importing it from here, before the sources package runs.
"""

from __future__ import annotations


class DeclarationError(ValueError):
    """A source declaration that cannot work; the message names the source's file and the field."""
