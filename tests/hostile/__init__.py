"""A hostile HTTP server playing API A and API B with scripted faults and a ground truth (issue 7)."""

from .scenario import API_A, API_B, Poison
from .server import HostileServer, RequestLog

__all__ = ["API_A", "API_B", "HostileServer", "Poison", "RequestLog"]
