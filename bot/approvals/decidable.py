"""What one person may decide right now: the calls still waiting that `Approvals.authorize`
lets them decide and that they have not already approved.

One query for every place that lists them (`/threadgate pending`, the App Home), so they
never disagree about who may decide what.
"""

from bot.approvals.approvals import Approvals
from storage.approvals import pending_not_approved_by
from storage.models import Approval, utcnow

# Pending calls read per question, at most. A workspace with more waiting than this has the
# soonest to expire listed; the rest follow as those are decided.
SCANNED = 500


async def decidable_by(
    approvals: Approvals, user_id: str, team_id: str, *, limit: int = 50
) -> list[Approval]:
    """At most `limit`, soonest to expire first."""
    waiting = await pending_not_approved_by(
        approvals.db, team_id=team_id, user_id=user_id, now=utcnow(), limit=SCANNED
    )
    found: list[Approval] = []
    for approval in waiting:
        verdict = await approvals.authorize(user_id, approval)
        if verdict.allowed:
            found.append(approval)
            if len(found) == limit:
                break
    return found
