"""The suite runs against a real node: APIX_URL (http://host:port) and APIX_JWT_SECRET (HS256, to mint
tokens) come from tests/e2e/python-sdk.test.ts, which starts the node. Without them every test skips,
except under CI=true, where that is a failure."""
import asyncio
import base64
import functools
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

URL = os.environ.get("APIX_URL")
SECRET = os.environ.get("APIX_JWT_SECRET")

if not (URL and SECRET):
    if os.environ.get("CI") == "true":
        raise RuntimeError("APIX_URL and APIX_JWT_SECRET are not set; CI=true requires a node")
    pytest.skip("no node: set APIX_URL and APIX_JWT_SECRET (tests/e2e/python-sdk.test.ts does)",
                allow_module_level=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def mint(sub: str = "py", org: str = "acme", roles=("service",), expires_in: float = 3600) -> str:
    """An HS256 JWT, as a token backend would mint it (claims of docs/protocol.md §7)."""
    now = time.time()
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"sub": sub, "org": org, "roles": list(roles), "iat": int(now),
                            "exp": int(now + expires_in)}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def run_async(fn):
    """Runs an async test in its own event loop (no pytest-asyncio needed)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 60))
    return wrapper


async def wait_for(cond, timeout: float = 20.0, what: str = "condition"):
    """Waits until `cond()` is true (polling), or fails saying what it waited for."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
