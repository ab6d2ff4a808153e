"""HTTP building blocks for the ingestion procedures: rate limiting, retries, auth, pagination.

Standard library plus `requests` only, because this package runs inside a Snowflake stored procedure.
"""

from .auth import ApiKeyAuth, Auth, BearerTokenAuth, HttpBasicAuth, OAuth2ClientCredentials
from .client import ApiClient
from .errors import ApiError, AuthError, HttpError, PaginationError, RateLimitExceeded
from .paginate import (
    CursorPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    Paginator,
    SinglePage,
)
from .ratelimit import RateLimiter
from .retry import RetryPolicy

__all__ = [
    "ApiClient",
    "ApiError",
    "ApiKeyAuth",
    "Auth",
    "AuthError",
    "BearerTokenAuth",
    "CursorPaginator",
    "HttpBasicAuth",
    "HttpError",
    "OAuth2ClientCredentials",
    "OffsetPaginator",
    "PageNumberPaginator",
    "PageRequest",
    "PaginationError",
    "Paginator",
    "RateLimitExceeded",
    "RateLimiter",
    "RetryPolicy",
    "SinglePage",
]
