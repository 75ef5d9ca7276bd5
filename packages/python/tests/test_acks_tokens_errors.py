"""Acks (redelivery of what a handler did not finish), token refresh from a provider, typed errors."""
import asyncio
import os
import re
import time

import pytest

from apix import (ERRORS, BadRequestError, Client, ForbiddenError, TokenExpiredError, UnauthorizedError,
                  error_from_wire, RateLimitedError)
from conftest import URL, mint, run_async, unique, wait_for


@run_async
async def test_an_acked_event_is_not_redelivered_and_one_whose_handler_failed_is():
    """The node of tests/e2e/python-sdk.test.ts redelivers after 300 ms without an ack."""
    ch = unique("agent:py")
    async with Client(URL, mint()) as pub, Client(URL, mint(sub="worker", roles=["member"])) as worker:
        seen = []

        async def handler(event):
            seen.append((event.id, event.metadata.get("retryCount")))
            if event.payload["fail"] and len([s for s in seen if s[0] == event.id]) == 1:
                raise RuntimeError("not done: no ack, so the gateway sends it again")

        await worker.subscribe(ch, handler, ack=True)
        ok_id = await pub.publish(ch, "job", {"fail": False})
        fail_id = await pub.publish(ch, "job", {"fail": True})
        await wait_for(lambda: len([s for s in seen if s[0] == fail_id]) >= 2, what="the redelivery")
        await asyncio.sleep(1.0)  # > 3 ack timeouts: an acked event would have come again by now
        assert [s for s in seen if s[0] == ok_id] == [(ok_id, None)]
        first, second = [s for s in seen if s[0] == fail_id][:2]
        assert first[1] is None and second[1] >= 1


@run_async
async def test_the_token_provider_is_called_again_before_expiry_and_the_connection_stays():
    ch = unique("agent:py")
    calls = []

    async def provider():
        calls.append(time.time())
        return mint(expires_in=6)  # refreshed half-way: about every 3 s

    async with Client(URL, provider) as client:
        connection = client.established["connectionId"]
        # Past the first token's expiry: the same connection still publishes.
        await wait_for(lambda: len(calls) >= 3 and time.time() > calls[0] + 7, timeout=40,
                       what="two refreshes and the first token's expiry")
        event_id = await client.publish(ch, "note", {"after": "refresh"})
        assert event_id and client.established["connectionId"] == connection
        reply = await client.refresh_token()
        assert reply["expiresAt"] > time.time() * 1000


@run_async
async def test_errors_are_typed_from_the_registry_codes():
    ch = unique("agent:py")
    async with Client(URL, mint(sub="member", roles=["member"])) as member:
        with pytest.raises(ForbiddenError) as forbidden:
            await member.publish(ch, "note", {})
        assert forbidden.value.code == "FORBIDDEN" and forbidden.value.http_status == 403
        with pytest.raises(BadRequestError):
            await member.subscribe("nosuchtype:x")
    async with Client(URL, mint()) as service:
        with pytest.raises(BadRequestError):
            await service.publish(ch, "agent_status_update", {"status": "running"})  # agentId missing
        with pytest.raises(BadRequestError):
            await service.publish(ch, "subscribe", {})  # a reserved type
        with pytest.raises(UnauthorizedError):
            await Client(URL, "not-a-token").publish_http(ch, "note", {})
    with pytest.raises(TokenExpiredError):
        await Client(URL, mint(expires_in=-10), reconnect=False).connect()
    with pytest.raises(UnauthorizedError):
        await Client(URL, "bad.token.here", reconnect=False).connect()
    err = error_from_wire({"code": "RATE_LIMITED", "message": "slow down", "retryAfterMs": 250})
    assert isinstance(err, RateLimitedError) and err.retry_after_ms == 250 and err.close_code == 4008


def test_the_python_registry_has_every_code_of_errors_ts_with_its_http_status_and_close_code():
    src = open(os.path.join(os.path.dirname(__file__), "../../protocol/src/errors.ts")).read()
    table = src[src.index("export const ERRORS"):src.index("/** WebSocket close codes")]
    found = {m[0]: (int(m[1]), int(m[2])) for m in
             re.findall(r"(\w+): \{\s*httpStatus: (\d+),\s*closeCode: (\d+)", table)}
    assert len(found) >= 15
    assert found == ERRORS


@run_async
async def test_after_an_expiry_4002_the_client_reconnects_with_a_new_token_and_resumes():
    ch = unique("agent:py")
    calls = []

    def provider():  # a plain function works too
        calls.append(time.time())
        return mint(expires_in=3)

    async with Client(URL, provider, auto_refresh=False, backoff_base_s=0.05) as client, \
            Client(URL, mint()) as pub:
        got = []
        await client.subscribe(ch, lambda e: got.append(e.id))
        first_connection = client.established["connectionId"]
        await wait_for(lambda: client.established["connectionId"] != first_connection, timeout=30,
                       what="the reconnect after the token expired")
        assert client.established["resumed"] is True and len(calls) >= 2
        event_id = await pub.publish(ch, "note", {"after": "expiry"})
        await wait_for(lambda: event_id in got, what="an event after the reconnect")


@run_async
async def test_the_publisher_hears_of_an_event_dead_lettered_after_its_redeliveries():
    """The test node gives up after 3 attempts 300 ms apart (tests/e2e/python-sdk.test.ts)."""
    ch = unique("agent:py")
    dead = []
    async with Client(URL, mint(), on_dead_letter=lambda err, channel, i: dead.append((err.code, channel, i))) \
            as pub, Client(URL, mint(sub="worker", roles=["member"])) as worker:
        def never_done(event):
            raise RuntimeError("always fails")

        await worker.subscribe(ch, never_done, ack=True)
        event_id = await pub.publish(ch, "job", {"n": 1})
        await wait_for(lambda: dead, timeout=30, what="the dead-letter notice")
        assert dead == [("UNAVAILABLE", ch, event_id)]
