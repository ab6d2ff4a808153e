"""api2snow local tooling: CLI, local stack and deploy. Never shipped into Snowflake."""

import warnings

# The Snowflake connector warns about its vendored requests' versions on import; it is noise for users.
warnings.filterwarnings("ignore", message=".*doesn't match a supported version.*")
