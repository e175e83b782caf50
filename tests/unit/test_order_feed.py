"""The in-process order feed: notes reach only their user's streams, and a stream that falls
behind is dropped (its inbox is bounded) instead of buffering without end."""

from __future__ import annotations

from uuid import uuid4

from finsync.domain.trading import StatusNote
from finsync.infrastructure.order_feed import LocalOrderFeed


def _note(user: object) -> StatusNote:
    return StatusNote(uuid4(), uuid4(), user, "filled")  # type: ignore[arg-type]


def test_a_note_travels_as_a_small_payload() -> None:
    note = _note(uuid4())
    assert StatusNote.parse(note.payload()) == note
    assert len(note.payload()) < 200  # NOTIFY payloads are limited to 8000 bytes


async def test_notes_reach_only_their_users_streams() -> None:
    feed = LocalOrderFeed(queue_size=4)
    ada, bob = uuid4(), uuid4()
    async with feed.subscribe(ada) as adas, feed.subscribe(bob) as bobs:
        note = _note(ada)
        feed.publish([note])
        assert await adas.next() == [note]
        feed.publish([_note(bob), _note(bob)])
        assert len(await bobs.next()) == 2
        feed.wake_all()
        assert await adas.next() == [None]
    assert feed.subscribers == 0


async def test_a_stream_that_falls_behind_is_dropped_not_buffered() -> None:
    feed = LocalOrderFeed(queue_size=2)
    ada = uuid4()
    async with feed.subscribe(ada) as slow, feed.subscribe(ada) as fast:
        feed.publish([_note(ada), _note(ada)])
        assert len(await fast.next()) == 2  # the fast one keeps up
        feed.publish([_note(ada)])  # the slow one's inbox was full
        assert slow.overflowed
        assert not fast.overflowed
        assert feed.subscribers == 1
        feed.publish([_note(ada)] * 5)  # nothing more is kept for the dropped one
        assert len(await slow.next()) == 2
        assert len(await fast.next()) == 2  # ...and fast then overflowed at its own bound
