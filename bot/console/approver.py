"""The person at the console decides each call the policy holds for approval: y, n or e.

They decide every call, whoever the policy names and however many approvals it asks for:
they are trying threadgate out, and there is nobody else. Decisions go through the same
compare-and-set storage as Slack's buttons, so the decision log (and all that reads it)
records them alike. An edit is offered only where the policy allows it, checked against the
tool's schema as the Slack form is.
"""

import json
from collections.abc import Callable, Mapping
from typing import Any

from bot.approvals import editing
from bot.approvals.approvals import NOT_EDITABLE
from bot.console.terminal import Terminal
from storage.approvals import EditOutcome, decide_approval, edit_arguments
from storage.database import Database
from storage.models import Approval, ApprovalStatus
from storage.outbox import Claimant

QUESTION = "Approve? [y/n/e] "
UNDECIDED = "No answer: the call was not run, and waits for a decision."

Schemas = Callable[[str], Mapping[str, Any] | None]


class _NoAnswer(Exception):
    """Standard input ended before the person decided."""


def arguments_text(arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    return json.dumps(parsed, ensure_ascii=False, indent=2)


class ConsoleApprover:
    def __init__(
        self,
        db: Database,
        *,
        terminal: Terminal,
        user_id: str,
        schemas: Schemas,
        by: Claimant,
    ) -> None:
        self.db = db
        self.terminal = terminal
        self.user_id = user_id
        self.schemas = schemas
        self.by = by

    async def ask(self, approval: Approval) -> bool:
        """Show the call and store what the person says; False when input ended first (the
        call stays pending, as an unanswered card would)."""
        say = self.terminal.say
        say(f"Approval needed: {approval.tool_name} ({approval.rule_label or 'policy'})")
        say(arguments_text(approval.edited_arguments or approval.arguments))
        try:
            while True:
                answer = (await self._read(QUESTION)).strip().lower()
                if answer in ("y", "yes"):
                    await self._decide(approval, ApprovalStatus.APPROVED)
                    return True
                if answer in ("n", "no"):
                    reason = (await self._read("Reason (optional): ")).strip()
                    await self._decide(approval, ApprovalStatus.REJECTED, reason or None)
                    return True
                if answer in ("e", "edit") and await self._edit(approval):
                    return True
                if answer not in ("e", "edit"):
                    say("Answer y to approve, n to reject, or e to edit the arguments.")
        except _NoAnswer:
            say(UNDECIDED)
            return False

    async def _read(self, prompt: str) -> str:
        line = await self.terminal.read(prompt)
        if line is None:
            raise _NoAnswer
        return line

    async def _decide(
        self, approval: Approval, status: ApprovalStatus, reason: str | None = None
    ) -> None:
        decision = await decide_approval(
            self.db,
            approval_id=approval.id,
            status=status,
            decided_by=self.user_id,
            reason=reason,
            by=self.by,
        )
        if decision is None or not decision.won:
            self.terminal.say("This call was already decided elsewhere; nothing changed.")
            return
        self.terminal.say("Approved." if status == ApprovalStatus.APPROVED else "Rejected.")

    async def _edit(self, approval: Approval) -> bool:
        """Ask for each argument (Enter keeps it); True when the edited call was approved."""
        say = self.terminal.say
        if not approval.allow_edit:
            say(NOT_EDITABLE)
            return False
        current = approval.edited_arguments or approval.arguments
        schema = self.schemas(approval.tool_name)
        try:
            if schema is None:
                raise editing.NotEditable("its tool is no longer loaded")
            fields = editing.fields_of(current)
        except editing.NotEditable as exc:
            say(f"This call cannot be edited: {exc}.")
            return False
        say("Type each argument's new value, or press Enter to keep it.")
        values: dict[str, str | None] = {}
        for field in fields:
            typed = await self._read(f"{field.name} [{field.value}]: ")
            values[field.block_id] = typed if typed else field.value
        arguments, errors = editing.read_fields(fields, values, schema)
        if errors:
            for block_id, error in errors.items():
                say(f"{block_id.removeprefix(editing.BLOCK_PREFIX)}: {error}")
            say("The edit was not saved.")
            return False
        if arguments != json.loads(current):
            edited = await edit_arguments(
                self.db,
                approval_id=approval.id,
                user_id=self.user_id,
                arguments=json.dumps(arguments, ensure_ascii=False),
                requirement=None,
                vote=False,
                by=self.by,
            )
            if edited is None or edited.outcome != EditOutcome.EDITED:
                say("This call was already decided elsewhere; nothing changed.")
                return True
        await self._decide(approval, ApprovalStatus.APPROVED)
        return True
