"""Local mock APIs (OAuth2/cursor, API key/offset, SOAP) serving one deterministic, time-varying data set."""

from .clock import MockClock
from .context import Credentials
from .dataset import Dataset
from .faults import Faults
from .server import MockApiConfig, MockApis, main

__all__ = ["Credentials", "Dataset", "Faults", "MockApiConfig", "MockApis", "MockClock", "main"]
