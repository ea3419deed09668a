"""The states of OAuth installs in progress: issued by /slack/install, used once by the
redirect, in whichever process it lands.

Only a digest of each state is stored. Using one is a compare-and-set delete: of two
redirects carrying the same state (a reload, a replay, two processes), one deletes the row and
the other finds nothing. Expired states are cleared as new ones are issued.
"""

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import col

from storage.database import Database
from storage.models import OAuthState, utcnow
from storage.statements import rowcount


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


async def issue(db: Database, state: str, *, lifetime: timedelta) -> None:
    now = utcnow()
    async with db.write() as session:
        await session.execute(delete(OAuthState).where(col(OAuthState.expires_at) <= now))
        session.add(OAuthState(digest=_digest(state), expires_at=now + lifetime))


async def consume(db: Database, state: str, *, now: datetime | None = None) -> bool:
    """True once for a state that was issued and has not expired; False ever after."""
    moment = now or utcnow()
    async with db.write(urgent=True) as session:
        result = await session.execute(
            delete(OAuthState).where(
                col(OAuthState.digest) == _digest(state), col(OAuthState.expires_at) > moment
            )
        )
        return rowcount(result) == 1
