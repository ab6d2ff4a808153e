"""The `api2snow` command: loads the CLI, which imports the declared sources and checks them on the way.

A declaration that cannot work is then one line naming its file and field, and exit code 2, not a traceback
(API2SNOW_DEBUG=1 shows it), whichever command was asked for: nothing runs on a broken declaration.
"""

from __future__ import annotations

import os
import sys

from api2snow.declaration_error import DeclarationError


def main() -> None:
    try:
        from .cli import main as cli_main
    except DeclarationError as exc:
        if os.environ.get("API2SNOW_DEBUG") == "1":
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # a broken install: one line too (API2SNOW_DEBUG=1 shows the traceback)
        if os.environ.get("API2SNOW_DEBUG") == "1":
            raise
        print(
            f"error: api2snow could not load ({type(exc).__name__}: {exc}); reinstall: make install",
            file=sys.stderr,
        )
        sys.exit(1)
    cli_main()
