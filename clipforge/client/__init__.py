"""The typed HTTP client of the ClipForge REST API: `Client` (`http`), its response models
(`models`) and its typed errors (`errors`). It imports nothing else of the core.

    from clipforge.client import ApiNotFound, Client
"""

from clipforge.client.errors import (
    ApiConflict,
    ApiError,
    ApiNotFound,
    BadRequest,
    ExportFailed,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
    UnsupportedMediaType,
    VideoFailed,
    WaitTimeout,
)
from clipforge.client.http import Client

__all__ = [
    "ApiConflict",
    "ApiError",
    "ApiNotFound",
    "BadRequest",
    "Client",
    "ExportFailed",
    "InvalidRequest",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "UnsupportedMediaType",
    "VideoFailed",
    "WaitTimeout",
]
