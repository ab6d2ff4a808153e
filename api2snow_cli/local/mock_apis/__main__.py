"""``python -m api2snow_cli.local.mock_apis``: serve the mock APIs in the foreground."""

import sys

from .server import main

sys.exit(main())
