"""Messages the bot owes a thread: stored with the change that owes them, then delivered.

A state change (an answer, a pause, a decision, an interruption) and the message it owes are
one transaction, so a process that dies between the commit and Slack's answer leaves the
message here instead of losing it. New posts in a thread are delivered in the order they were
owed (a note never overtakes the card it speaks of); updates of earlier messages go whenever
their message exists. Each row is claimed before it is sent: by the process that wrote it
(until `CLAIM` runs out) or, after that, by whoever sweeps.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.card_views import CardView
from storage.database import Database
from storage.models import Approval, OutboxKind, OutboxMessage, OutboxStatus, utcnow
from storage.statements import rowcount

OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
APPROVALS: Table = Approval.__table__  # type: ignore[attr-defined]
CLAIM = timedelta(seconds=60)
MAX_ATTEMPTS = 12
FIRST_PAUSE = 5.0  # seconds before a failed delivery is tried again; doubles each time
DELIVERED_KEPT = timedelta(days=1)
CARD_KINDS = (OutboxKind.CARD, OutboxKind.MIRROR)


@dataclass(frozen=True)
class Claimant:
    """Who delivers what a transaction owes, and how long others leave it to them."""

    owner: str
    ttl: timedelta = CLAIM


@dataclass(frozen=True)
class Owed:
    """One message owed to a thread, as the bot describes it."""

    kind: OutboxKind
    payload: dict[str, Any] | None = None
    approval_id: str | None = None
    # A card: does its approval have a mirror? None: not known to the caller, so `add` reads it.
    mirrored: bool | None = None


@dataclass(frozen=True)
class Delivery:
    """A claimed row, with what its delivery needs to know."""

    id: int
    thread_key: str
    kind: OutboxKind
    payload: dict[str, Any] | None
    approval_id: str | None
    attempts: int
    created_at: datetime
    card_ts: str | None  # for a card or its mirror: the ts of that message once posted
    # For a card or its mirror claimed with the change that owed it: what it shows, as that
    # transaction left it (None: its delivery reads it).
    view: CardView | None = None

    @property
    def is_post(self) -> bool:
        """A new message in the thread (ordered there), not an update of one that exists. A
        mirror is in another channel: never held up by the thread's posts, nor holding them."""
        if self.kind == OutboxKind.CARD:
            return self.card_ts is None
        return self.kind not in (OutboxKind.UPDATE, OutboxKind.MIRROR)

    @property
    def is_first_post(self) -> bool:
        """The first post of a card or of its mirror: later versions wait for its message."""
        return self.kind in CARD_KINDS and self.card_ts is None


def card_of(approval: Approval) -> Owed:
    """The card of an approval in hand: whether it has a mirror is known, not read again."""
    return Owed(
        OutboxKind.CARD, approval_id=approval.id, mirrored=approval.mirror_channel_id is not None
    )


async def add(
    session: AsyncSession, *, thread_key: str, owed: Sequence[Owed], by: Claimant | None
) -> list[int]:
    """Store messages owed by the change this session is making; the caller delivers them.

    A card of an approval that has a mirror owes the mirror its version too, in the same
    transaction, so no path that changes a card can forget its copy."""
    if not owed:
        return []
    if by is None:
        raise ValueError("owed messages need somebody to deliver them")
    owed = await _with_mirrors(session, owed)
    now = utcnow()
    # Core, not the unit of work: one multi-row INSERT … RETURNING, ids in the rows' order.
    ids = await session.scalars(
        _ADD,
        [
            {
                "thread_key": thread_key,
                "kind": item.kind,
                "status": OutboxStatus.PENDING,
                "approval_id": item.approval_id,
                "payload": json.dumps(item.payload) if item.payload is not None else None,
                "claimed_by": by.owner,
                "attempts": 1,
                "next_attempt_at": now + by.ttl,
                "created_at": now,
            }
            for item in owed
        ],
    )
    return list(ids)


async def _with_mirrors(session: AsyncSession, owed: Sequence[Owed]) -> list[Owed]:
    cards = [o for o in owed if o.kind == OutboxKind.CARD and o.approval_id]
    if not cards:
        return list(owed)
    mirrored = {o.approval_id for o in cards if o.mirrored}
    unknown = {o.approval_id for o in cards if o.mirrored is None}
    if unknown:
        mirrored |= set(
            await session.scalars(
                select(col(Approval.id)).where(
                    col(Approval.id).in_(unknown), col(Approval.mirror_channel_id).is_not(None)
                )
            )
        )
    result: list[Owed] = []
    for item in owed:
        result.append(item)
        if item.kind == OutboxKind.CARD and item.approval_id in mirrored:
            result.append(Owed(OutboxKind.MIRROR, approval_id=item.approval_id))
    return result


class Claimed(list[Delivery]):
    """What a claim took, in order. `held_back`: a card's later version was left where
    somebody else still holds an earlier one, so that the card never ends on an older look;
    it is ours to send once that one is gone (`Outbox` tries again soon)."""

    held_back: bool = False


async def claim(db: Database, *, thread_key: str, by: Claimant) -> Claimed:
    """Claim what this process may deliver in the thread now, in order.

    Rows are ours when we wrote them or when their claim ran out. New posts are taken in
    order and stop at the first that somebody else holds; updates of other messages are taken
    regardless, but a card's versions go in order: none while an earlier one is held by
    somebody else (two processes that each changed the card would otherwise race their
    updates, and the older look could land last).
    """
    async with db.write() as session:
        return await claim_in(session, thread_key=thread_key, by=by)


async def claim_in(
    session: AsyncSession,
    *,
    thread_key: str,
    by: Claimant,
    current: Sequence[CardView] = (),
) -> Claimed:
    """`claim` in the transaction of the change that owes the messages: one transaction less
    between a change and its delivery. The caller must keep this process's other deliveries
    of the thread out until it has delivered what this returns. `current` are the cards of
    approvals this transaction wrote or read under their lock: their messages are known, not
    read, and their deliveries carry the view."""
    now, owner = utcnow(), by.owner
    rows = (await session.execute(_PENDING_IN_THREAD, {"thread_key": thread_key})).all()
    views = {view.approval.id: view for view in current}
    card_ts = _known_messages([view.approval for view in current])
    card_ts |= await _card_messages(
        session, [r.approval_id for r in rows if r.approval_id and r.approval_id not in views]
    )
    claimed = Claimed()
    posts_blocked = False
    unposted: set[tuple[OutboxKind, str]] = set()
    held: set[tuple[OutboxKind, str]] = set()  # cards with a version somebody else holds
    for row in rows:
        delivery = _delivery(
            row, card_ts.get((row.kind, row.approval_id or "")), views.get(row.approval_id or "")
        )
        card = (delivery.kind, row.approval_id or "")
        if delivery.is_first_post:
            assert row.approval_id is not None
            if card in unposted:
                continue  # whoever posts the card sends its later versions (`delivered`)
            unposted.add(card)
        ours = row.claimed_by == owner or row.next_attempt_at <= now
        if delivery.is_post and (posts_blocked or not ours):
            posts_blocked = True
            continue
        if card in held:
            claimed.held_back = claimed.held_back or ours
            continue
        if not ours:
            if _is_card(delivery):
                held.add(card)
            continue
        if row.claimed_by != owner or row.next_attempt_at <= now:
            result = await session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == row.id,
                    col(OutboxMessage.status) == OutboxStatus.PENDING,
                    or_(
                        col(OutboxMessage.claimed_by) == owner,
                        col(OutboxMessage.next_attempt_at) <= now,
                    ),
                )
                .values(
                    claimed_by=owner,
                    attempts=row.attempts + 1,
                    next_attempt_at=now + by.ttl,
                )
            )
            if rowcount(result) != 1:
                posts_blocked = posts_blocked or delivery.is_post
                if _is_card(delivery):
                    held.add(card)
                continue
            delivery = _delivery(row, delivery.card_ts, delivery.view, attempts=row.attempts + 1)
        claimed.append(delivery)
    return claimed


def _is_card(delivery: Delivery) -> bool:
    return delivery.approval_id is not None and delivery.kind in CARD_KINDS


async def _card_messages(
    session: AsyncSession, approval_ids: list[str]
) -> dict[tuple[OutboxKind, str], str]:
    """The posted messages of these cards and of their mirrors, by kind and approval."""
    if not approval_ids:
        return {}
    found = await session.execute(_CARD_MESSAGES, {"approval_ids": list(set(approval_ids))})
    return _messages(found.all())


def _known_messages(approvals: Sequence[Approval]) -> dict[tuple[OutboxKind, str], str]:
    return _messages((a.id, a.message_ts, a.mirror_ts) for a in approvals)


def _messages(
    rows: Iterable[tuple[str, str | None, str | None]],
) -> dict[tuple[OutboxKind, str], str]:
    messages: dict[tuple[OutboxKind, str], str] = {}
    for approval_id, card_ts, mirror_ts in rows:
        if card_ts:
            messages[(OutboxKind.CARD, approval_id)] = card_ts
        if mirror_ts:
            messages[(OutboxKind.MIRROR, approval_id)] = mirror_ts
    return messages


def _delivery(
    row: Any, card_ts: str | None, view: CardView | None = None, attempts: int | None = None
) -> Delivery:
    """`row` is an `OutboxMessage` or a row of the table read with Core."""
    assert row.id is not None
    return Delivery(
        id=row.id,
        thread_key=row.thread_key,
        kind=OutboxKind(row.kind),
        payload=json.loads(row.payload) if row.payload else None,
        approval_id=row.approval_id,
        attempts=row.attempts if attempts is None else attempts,
        created_at=row.created_at,
        card_ts=card_ts,
        view=view if OutboxKind(row.kind) in CARD_KINDS else None,
    )


# Every change that owes a message, every delivery and every claim run these: built once,
# bound each time (see storage/statements). What was said now lives in Slack: a delivered row
# keeps no copy of it.
_ADD = insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True)
_DELIVERED = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=OutboxStatus.DELIVERED,
        delivered_at=bindparam("at"),
        message_ts=bindparam("ts"),
        payload=None,
    )
)
_PENDING_IN_THREAD = (
    select(OUTBOX)
    .where(OUTBOX.c.thread_key == bindparam("thread_key"), OUTBOX.c.status == OutboxStatus.PENDING)
    .order_by(OUTBOX.c.id)
)
_CARD_MESSAGES = select(APPROVALS.c.id, APPROVALS.c.message_ts, APPROVALS.c.mirror_ts).where(
    APPROVALS.c.id.in_(bindparam("approval_ids", expanding=True))
)
_CARD_POSTED = {
    column: update(APPROVALS)
    .where(APPROVALS.c.id == bindparam("approval_id"))
    .values({column: bindparam("ts")})
    for column in ("message_ts", "mirror_ts")
}
_WAITING_FOR_CARD = (
    select(OUTBOX)
    .where(
        OUTBOX.c.approval_id == bindparam("approval_id"),
        OUTBOX.c.kind == bindparam("kind"),
        OUTBOX.c.status == OutboxStatus.PENDING,
        OUTBOX.c.id > bindparam("after"),
    )
    .order_by(OUTBOX.c.id)
)
_CLAIM_WAITING = (
    update(OUTBOX)
    .where(OUTBOX.c.id.in_(bindparam("row_ids", expanding=True)))
    .values(claimed_by=bindparam("owner"), next_attempt_at=bindparam("until"))
)


async def delivered(
    db: Database, *, delivery: Delivery, by: Claimant, message_ts: str | None
) -> list[Delivery]:
    """Record that Slack accepted it; a card's first post gives the approval its message.

    Returns the later updates of that card that were waiting for its message, now claimed.
    """
    now = utcnow()
    async with db.write() as session:
        await session.execute(_DELIVERED, {"row_id": delivery.id, "at": now, "ts": message_ts})
        if not (delivery.is_first_post and message_ts):
            return []
        column = "mirror_ts" if delivery.kind == OutboxKind.MIRROR else "message_ts"
        await session.execute(
            _CARD_POSTED[column], {"approval_id": delivery.approval_id, "ts": message_ts}
        )
        waiting = (
            await session.execute(
                _WAITING_FOR_CARD,
                {"approval_id": delivery.approval_id, "kind": delivery.kind, "after": delivery.id},
            )
        ).all()
        if waiting:
            await session.execute(
                _CLAIM_WAITING,
                {
                    "row_ids": [row.id for row in waiting],
                    "owner": by.owner,
                    "until": now + by.ttl,
                },
            )
        return [_delivery(row, message_ts) for row in waiting]


async def failed(db: Database, *, delivery: Delivery, error: str, permanent: bool) -> bool:
    """Slack did not take it: try again later with a growing pause, or give up for good.

    Returns True when the row was given up.
    """
    give_up = permanent or delivery.attempts >= MAX_ATTEMPTS
    pause = timedelta(seconds=min(FIRST_PAUSE * 2 ** (delivery.attempts - 1), 600))
    async with db.write() as session:
        await session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == delivery.id)
            .values(
                status=OutboxStatus.FAILED if give_up else OutboxStatus.PENDING,
                error=error[:100],
                claimed_by=None,
                next_attempt_at=utcnow() + pause,
            )
        )
    return give_up


async def release(db: Database, *, ids: Sequence[int]) -> None:
    """Hand rows this process will not deliver (it is stopping) to the sweep at once."""
    if not ids:
        return
    async with db.write() as session:
        await session.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id).in_(list(ids)),
                col(OutboxMessage.status) == OutboxStatus.PENDING,
            )
            .values(claimed_by=None, next_attempt_at=utcnow())
        )


async def threads_with_due_messages(db: Database, *, limit: int = 100) -> list[str]:
    async with db.read() as session:
        rows = await session.scalars(
            select(col(OutboxMessage.thread_key))
            .where(
                col(OutboxMessage.status) == OutboxStatus.PENDING,
                col(OutboxMessage.next_attempt_at) <= utcnow(),
            )
            .distinct()
            .limit(limit)
        )
        return list(rows)


async def purge_delivered(db: Database, *, batch: int = 500) -> int:
    """Delivered rows are kept a day (to be found by a late retry), then go."""
    cutoff = utcnow() - DELIVERED_KEPT
    async with db.write() as session:
        ids = (
            await session.scalars(
                select(col(OutboxMessage.id))
                .where(
                    col(OutboxMessage.status) == OutboxStatus.DELIVERED,
                    col(OutboxMessage.delivered_at) < cutoff,
                )
                .limit(batch)
            )
        ).all()
        if not ids:
            return 0
        result = await session.execute(
            delete(OutboxMessage).where(col(OutboxMessage.id).in_(list(ids)))
        )
        return rowcount(result)
