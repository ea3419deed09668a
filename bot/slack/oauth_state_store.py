"""slack_sdk's OAuth state-store interface over threadgate's database (storage.oauth_states):
an install started on one process may finish on another, and a state works once."""

import logging
import secrets
from datetime import timedelta
from logging import Logger
from typing import Any

from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from storage import oauth_states
from storage.database import Database

log = logging.getLogger(__name__)


class DatabaseOAuthStateStore(AsyncOAuthStateStore):
    def __init__(self, db: Database, *, expiration_seconds: int) -> None:
        self.db = db
        self.lifetime = timedelta(seconds=expiration_seconds)

    @property
    def logger(self) -> Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(32)
        await oauth_states.issue(self.db, state, lifetime=self.lifetime)
        return state

    async def async_consume(self, state: str) -> bool:
        if not state:
            return False
        return await oauth_states.consume(self.db, state)
