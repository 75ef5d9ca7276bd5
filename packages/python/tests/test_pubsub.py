"""Connect, subscribe with handlers, publish over WebSocket and HTTP, idempotency, since, resume."""
import asyncio

from apix import Client
from conftest import URL, mint, run_async, unique, wait_for


@run_async
async def test_publish_over_websocket_and_http_reaches_the_handler_once_in_order():
    ch = unique("agent:py")
    async with Client(URL, mint()) as client:
        got = []
        sub = await client.subscribe(ch, lambda e: got.append(e))
        assert sub.recovered is None or sub.recovered is False or sub.recovered is True
        ids = [await client.publish(ch, "agent_status_update", {"agentId": "py", "status": "running", "step": i})
               for i in range(3)]
        ids.append(await client.publish_http(ch, "agent_status_update", {"agentId": "py", "status": "idle"}))
        await wait_for(lambda: len(got) >= 4, what="4 events")
        await asyncio.sleep(0.2)
        assert [e.id for e in got] == ids
        assert got[0].payload["step"] == 0 and got[0].type == "agent_status_update" and got[0].channel == ch


@run_async
async def test_an_idempotency_key_repeated_creates_no_second_event_over_websocket_or_http():
    ch = unique("agent:py")
    async with Client(URL, mint()) as client:
        first = await client.publish(ch, "note", {"n": 1}, idempotency_key="k-1")
        again = await client.publish(ch, "note", {"n": 1}, idempotency_key="k-1")
        over_http = await client.publish_http(ch, "note", {"n": 1}, idempotency_key="k-1")
        other = await client.publish(ch, "note", {"n": 2}, idempotency_key="k-2")
        assert first == again == over_http and other != first
        page = await client.history(ch)
        assert [e["id"] for e in page["events"]] == [first, other]


@run_async
async def test_subscribe_with_since_replays_the_later_events_then_live_ones():
    ch = unique("agent:py")
    async with Client(URL, mint()) as pub, Client(URL, mint(sub="reader", roles=["member"])) as reader:
        ids = [await pub.publish(ch, "note", {"i": i}) for i in range(4)]
        got = []
        sub = await reader.subscribe(ch, lambda e: got.append(e.id), since=ids[1])
        assert sub.recovered is True
        live = await pub.publish(ch, "note", {"i": 4})
        await wait_for(lambda: len(got) >= 3, what="2 replayed + 1 live")
        assert got == ids[2:] + [live]


@run_async
async def test_a_dropped_connection_resumes_its_session_with_the_missed_events_once():
    ch = unique("agent:py")
    async with Client(URL, mint(), backoff_base_s=0.05) as client:
        got = []
        await client.subscribe(ch, lambda e: got.append(e.id))
        first = await client.publish(ch, "note", {"i": 0})
        await wait_for(lambda: got == [first], what="the first event")
        await client.drop()
        missed = [await client.http.publish(ch, "note", {"i": i}) for i in (1, 2)]
        await wait_for(lambda: len(got) >= 3, what="the missed events after the resume")
        assert client.established["resumed"] is True
        after = await client.publish(ch, "note", {"i": 3})
        await wait_for(lambda: len(got) >= 4, what="a live event after the resume")
        await asyncio.sleep(0.3)
        assert got == [first, *missed, after]


@run_async
async def test_a_publish_made_while_disconnected_is_sent_after_the_reconnect():
    ch = unique("agent:py")
    async with Client(URL, mint(), backoff_base_s=0.05) as client:
        got = []
        await client.subscribe(ch, lambda e: got.append(e.id))
        await client.drop()
        event_id = await client.publish(ch, "note", {"while": "away"})
        await wait_for(lambda: got == [event_id], what="the publish made while away")


def test_dedupe_is_per_channel_never_across_channels():
    """The same id on two channels is two events; a repeated id on one channel is a duplicate."""
    async def scenario():
        client = Client(URL, mint())
        got = []
        for ch in ("agent:a", "agent:b"):
            await asyncio.sleep(0)
            client.subscriptions[ch] = __import__("apix").Subscription(ch, lambda e: got.append((e.channel, e.id)))
        frame = lambda ch, i: {"type": "note", "channel": ch, "id": i, "payload": {}, "metadata": {}}
        for f in (frame("agent:a", "5-0"), frame("agent:b", "5-0"), frame("agent:a", "5-0"),
                  frame("agent:a", "4-9"), frame("agent:a", "5-10"), frame("agent:b", "10-0")):
            client._dispatch(f)
        await asyncio.sleep(0.05)
        assert got == [("agent:a", "5-0"), ("agent:b", "5-0"), ("agent:a", "5-10"), ("agent:b", "10-0")]
    asyncio.run(scenario())
