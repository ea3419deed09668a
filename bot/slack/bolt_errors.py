"""What Bolt answers when a listener cannot: a quiet 404, a 503 to retry, or a 500.

Bolt's default for a request no listener takes logs a warning with sample listener code for
every one, which anyone who can reach the URL with a signed body could fill the logs with.
A message that cannot be stored because the database is unreachable gets a 503: Slack
retries events it did not get a 2xx for, so nothing a person wrote is lost to an outage.
"""

import logging

from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse

from bot.runtime.background import new_ref
from storage.database import UNAVAILABLE

log = logging.getLogger(__name__)


async def on_bolt_error(error: Exception) -> BoltResponse:
    if isinstance(error, BoltUnhandledRequestError):
        return BoltResponse(status=404, body="")
    if isinstance(error, UNAVAILABLE):
        log.warning("the database is unreachable (%s): asking Slack to retry", type(error).__name__)
        return BoltResponse(status=503, body={"error": "database unavailable, retry later"})
    ref = new_ref()
    log.error("request failed in Bolt (ref %s)", ref, exc_info=error)
    return BoltResponse(status=500, body={"error": "internal error", "ref": ref})
