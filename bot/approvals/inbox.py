"""The App Home inbox: the calls a person may decide right now, drawn from the database each
time their Home is published.

"May decide right now" is exactly what a click would allow: the call is pending and not
expired, `Approvals.authorize` lets them decide it (the one authorization function, so the
inbox can never offer what the buttons would refuse), and they have not already approved it
(a quorum waits for others).

A Home view is a view, not something the bot owes: the state it shows is in the database and
is drawn again whenever the person opens the tab. So the refresh after a change runs after
that change committed, as a background task, best effort: a refresh lost to a crash or to
Slack is made good by the next opening. It is bounded: only the approvers of the changed
calls (user groups resolved), and of them only those who have opened the Home tab.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.approvals import Approvals
from bot.approvals.authorization import is_user_group
from bot.approvals.decidable import decidable_by
from bot.runtime.background import Background
from bot.slack import cards, home_blocks
from bot.slack.permalinks import Permalinks
from storage import decision_log, home_views
from storage.database import Database
from storage.models import Approval

log = logging.getLogger(__name__)

SCANNED = 500  # calls listed per view at most (twenty are shown, the rest counted)

# The person whose own Home action is under way, and the task doing it: their Home is drawn
# again when it ends, so a refresh that action's change starts leaves them out (one publish,
# not two). Tasks started meanwhile (a resume) inherit the variable, hence the task.
_redrawn_after: ContextVar[tuple[str, str, asyncio.Task[Any] | None] | None] = ContextVar(
    "redrawn_after", default=None
)


@contextlib.contextmanager
def redrawn_after(team_id: str, user_id: str) -> Iterator[None]:
    """Around a Home action whose end publishes this person's Home anyway."""
    token = _redrawn_after.set((team_id, user_id, asyncio.current_task()))
    try:
        yield
    finally:
        _redrawn_after.reset(token)


def _redrawn_here() -> tuple[str, str] | None:
    found = _redrawn_after.get()
    if found is None or found[2] is not asyncio.current_task():
        return None
    return found[0], found[1]


class HomeInbox:
    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        approvals: Approvals,
        permalinks: Permalinks,
        background: Background,
    ) -> None:
        self.db = db
        self.client = client
        self.approvals = approvals
        self.permalinks = permalinks
        self.background = background
        # One publish at a time per person here, so the view drawn last is the newest.
        self._locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    async def decidable(self, team_id: str, user_id: str) -> list[Approval]:
        """The calls this person may decide now, soonest to expire first, as
        `/threadgate pending` lists them."""
        return await decidable_by(self.approvals, user_id, team_id, limit=SCANNED)

    async def publish(self, team_id: str, user_id: str) -> None:
        """Draw this person's Home from the database and publish it; never raises."""
        async with self._locks[(team_id, user_id)]:
            try:
                await self._publish(team_id, user_id)
            except Exception:
                log.exception("could not publish a Home view")

    async def _publish(self, team_id: str, user_id: str) -> None:
        approvals = await self.decidable(team_id, user_id)
        shown = approvals[: home_blocks.SHOWN]
        items = await asyncio.gather(*(self._item(a) for a in shown))
        recent = await decision_log.recent_by(
            self.db, team_id=team_id, user_id=user_id, limit=home_blocks.RECENT
        )
        view = home_blocks.home_view(items, len(approvals) - len(shown), recent)
        try:
            await self.client.views_publish(user_id=user_id, view=view)
        except SlackApiError as exc:
            log.warning("Slack refused a Home view: %s", exc.response.get("error"))
            return
        await home_views.published(self.db, team_id=team_id, user_id=user_id)

    async def _item(self, approval: Approval) -> home_blocks.InboxItem:
        approved_by = (
            await decision_log.approved_by(self.db, approval.id)
            if approval.approvals_needed > 1
            else []
        )
        return home_blocks.InboxItem(
            view=cards.view_of(approval, approved_by),
            channel_id=approval.channel_id,
            asked_at=approval.created_at,
            link=await self.permalinks.of(approval.channel_id, approval.thread_ts),
        )

    def changed(self, approvals: Sequence[Approval]) -> None:
        """Redraw, after the change committed, the Home views that may list these calls."""
        if approvals:
            skip = _redrawn_here()
            self.background.spawn(self.refresh(list(approvals), skip=skip), name="home refresh")

    async def refresh(
        self, approvals: Sequence[Approval], *, skip: tuple[str, str] | None = None
    ) -> None:
        """`skip`: the (team, user) whose Home the action that changed them redraws itself."""
        wanted: defaultdict[str, set[str]] = defaultdict(set)
        for approval in approvals:
            approvers = self.approvals.approvers_of(approval)
            members = await self.approvals.groups.members(approvers)
            for approver in approvers:
                if is_user_group(approver):
                    wanted[approval.team_id].update(members.get(approver, ()))
                else:
                    wanted[approval.team_id].add(approver)
        for team_id, users in wanted.items():
            if skip is not None and skip[0] == team_id:
                users.discard(skip[1])
            for user_id in await home_views.opened_by(self.db, team_id=team_id, user_ids=users):
                await self.publish(team_id, user_id)
