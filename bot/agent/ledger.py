"""The agent's tools claim approved calls here, in the same database as the approvals."""

from storage.approvals import ExecutionClaim, claim_execution, record_outcome
from storage.database import Database


class ExecutionLedger:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, *, run_id: str, call_id: str) -> ExecutionClaim:
        return await claim_execution(self.db, run_id=run_id, call_id=call_id)

    async def record(self, *, run_id: str, call_id: str, output: str) -> None:
        await record_outcome(self.db, run_id=run_id, call_id=call_id, outcome=output)
