"""APIX for Python: an asyncio client of the APIX event gateway (docs/python.md)."""
from .client import Client, Event, Subscription, event_id_key, token_expiry
from .errors import *  # noqa: F401,F403 (the typed errors)
from .errors import ApiXError, ERRORS, error_from_wire
from .http import HttpApi
from .streams import StreamPublisher, StreamState

__all__ = ["Client", "Event", "Subscription", "StreamPublisher", "StreamState", "HttpApi", "ApiXError",
           "ERRORS", "error_from_wire", "event_id_key", "token_expiry"]
