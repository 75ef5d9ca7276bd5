"""Streams (docs/protocol.md §14): `async for token in llm: await s.append(token)`; live, late and
history readers end with the same text; cancellation reaches the publisher; an exception ends it `error`."""
import asyncio

from apix import Client
from conftest import URL, mint, run_async, unique, wait_for

TOKENS = [f"t{i} " for i in range(300)]


@run_async
async def test_a_streamed_answer_reaches_a_live_and_a_late_subscriber_whole_and_history_compacted():
    ch = unique("agent:py")
    async with Client(URL, mint()) as agent, Client(URL, mint(sub="u1", roles=["member"])) as live, \
            Client(URL, mint(sub="u2", roles=["member"])) as late:
        live_frames = []
        live_sub = await live.subscribe(ch, lambda e: live_frames.append(e))
        halfway, joined = asyncio.Event(), asyncio.Event()

        async def llm():
            for i, token in enumerate(TOKENS):
                if i == 150:
                    halfway.set()
                    await joined.wait()
                await asyncio.sleep(0.001)
                yield token

        async def publish():
            async with agent.stream(ch, event_type="agent_message", data={"agentId": "py"}) as s:
                async for token in llm():
                    await s.append(token)
            return s

        task = asyncio.create_task(publish())
        await halfway.wait()
        late_sub = await late.subscribe(ch, lambda e: None)
        joined.set()
        publisher = await task
        stream_id = publisher.stream_id
        full = "".join(TOKENS)
        for sub in (live_sub, late_sub):
            await wait_for(lambda: stream_id in sub.streams and sub.streams[stream_id].done, what="stream.end")
            state = sub.streams[stream_id]
            assert state.text == full and state.status == "complete" and state.event_type == "agent_message"
            assert state.data == {"agentId": "py"} and state.seq == len(publisher.pieces)
        # The live one saw it start and grow; the late one got one snapshot, never the first pieces.
        kinds = [e.type for e in live_frames]
        assert kinds[0] == "stream.start" and kinds[-1] == "stream.end" and "stream.append" in kinds
        assert late_sub.streams[stream_id].end_id == live_sub.streams[stream_id].end_id
        page = await agent.history(ch)
        compacted = [e for e in page["events"] if e["type"] == "agent_message"]
        assert len(compacted) == 1 and compacted[0]["payload"]["text"] == full
        assert compacted[0]["id"] == live_sub.streams[stream_id].end_id
        assert compacted[0]["payload"]["agentId"] == "py" and compacted[0]["payload"]["status"] == "complete"


@run_async
async def test_a_subscriber_cancels_and_the_publisher_is_told_and_ends_it_cancelled():
    ch = unique("agent:py")
    # stream.cancel needs the right to publish on the channel (docs/protocol.md §14): a service here.
    async with Client(URL, mint()) as agent, Client(URL, mint(sub="u1")) as reader:
        sub = await reader.subscribe(ch, lambda e: None)
        async with agent.stream(ch, event_type="agent_message") as s:
            await s.append("thinking ")
            await wait_for(lambda: s.stream_id in sub.streams, what="the stream at the subscriber")
            await reader.cancel_stream(ch, s.stream_id, reason="stop")
            await asyncio.wait_for(s.cancelled.wait(), 20)
            assert s.cancel_reason == "stop"
            await s.end("cancelled")
        await wait_for(lambda: sub.streams[s.stream_id].done, what="stream.end")
        assert sub.streams[s.stream_id].status == "cancelled" and sub.streams[s.stream_id].text == "thinking "


@run_async
async def test_an_exception_in_the_block_ends_the_stream_with_status_error():
    ch = unique("agent:py")
    async with Client(URL, mint()) as agent, Client(URL, mint(sub="u1", roles=["member"])) as reader:
        sub = await reader.subscribe(ch, lambda e: None)
        try:
            async with agent.stream(ch, event_type="agent_message") as s:
                await s.append("partial")
                raise ValueError("the model failed")
        except ValueError:
            pass
        await wait_for(lambda: s.stream_id in sub.streams and sub.streams[s.stream_id].done, what="stream.end")
        state = sub.streams[s.stream_id]
        assert state.status == "error" and state.text == "partial"


@run_async
async def test_stream_frames_that_do_not_follow_are_never_applied():
    """The fromSeq rule: an append applies only when its fromSeq is the held seq + 1."""
    client = Client(URL, mint())
    got = []
    from apix import Subscription
    client.subscriptions["agent:x"] = Subscription("agent:x", lambda e: got.append(e.payload.get("seq")))
    frame = lambda kind, **p: {"type": kind, "channel": "agent:x", "id": "s-1",
                               "payload": {"streamId": "s1", **p}, "metadata": {}}
    for f in (frame("stream.snapshot", eventType="m", data=None, text="ab", seq=2, status="streaming"),
              frame("stream.append", fromSeq=2, seq=2, text="b"),  # already held: not applied
              frame("stream.append", fromSeq=3, seq=4, text="cd"),
              frame("stream.append", fromSeq=6, seq=6, text="x")):  # a gap: not applied
        client._dispatch(f)
    await asyncio.sleep(0.05)
    state = client.subscriptions["agent:x"].streams["s1"]
    assert got == [2, 4] and state.seq == 4 and state.text == "abcd"


@run_async
async def test_a_publisher_and_a_subscriber_that_drop_mid_stream_resume_and_the_text_is_whole():
    ch = unique("agent:py")
    async with Client(URL, mint(), backoff_base_s=0.05) as agent, \
            Client(URL, mint(sub="u1", roles=["member"]), backoff_base_s=0.05) as reader:
        sub = await reader.subscribe(ch, lambda e: None)
        async with agent.stream(ch, event_type="agent_message") as s:
            for i, token in enumerate(TOKENS):
                if i == 100:
                    await agent.drop()  # the publisher's connection is lost
                if i == 200:
                    await reader.drop()  # and then the subscriber's
                await s.append(token)
                await asyncio.sleep(0.001)
            await wait_for(lambda: agent.connected.is_set(), what="the publisher back")
        await wait_for(lambda: s.stream_id in sub.streams and sub.streams[s.stream_id].done, what="stream.end")
        assert sub.streams[s.stream_id].text == "".join(TOKENS)
        page = await agent.history(ch)
        assert [e["payload"]["text"] for e in page["events"] if e["type"] == "agent_message"] == ["".join(TOKENS)]
