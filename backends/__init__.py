"""The shared model-backend layer: every other package talks to models only through here."""

from thoughtgraph.backends.base import Backend
from thoughtgraph.backends.cache import RequestCache
from thoughtgraph.backends.errors import (
    BackendConfigError,
    BackendError,
    BackendUnavailableError,
    CapabilityError,
    InvalidRequestError,
    TransientBackendError,
)
from thoughtgraph.backends.ledger import UsageLedger, record_event
from thoughtgraph.backends.retry import RetryPolicy
from thoughtgraph.backends.spec import DEFAULT_BACKEND, create_backend, register_backend, shared_backend
from thoughtgraph.backends.types import Capabilities, Choice, Constraint, Message, Request, Result, Usage

__all__ = [
    "DEFAULT_BACKEND",
    "Backend",
    "BackendConfigError",
    "BackendError",
    "BackendUnavailableError",
    "Capabilities",
    "CapabilityError",
    "Choice",
    "Constraint",
    "InvalidRequestError",
    "Message",
    "Request",
    "RequestCache",
    "Result",
    "RetryPolicy",
    "TransientBackendError",
    "Usage",
    "UsageLedger",
    "create_backend",
    "record_event",
    "register_backend",
    "shared_backend",
]
