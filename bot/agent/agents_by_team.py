"""Which agent answers a workspace: its own `[workspaces.T….agent]`, or the top level's.

Each agent is a full `AgentRuns` (name, instructions, model, turn and history limits) over the
same tools, MCP servers, ledger and model client. A thread's work is picked by its team, so a
run paused in a workspace resumes with that workspace's agent, whose name its state carries.
"""

from collections.abc import Mapping

from bot.agent.runs import AgentRuns


class AgentsByTeam:
    def __init__(self, default: AgentRuns, by_team: Mapping[str, AgentRuns] | None = None) -> None:
        self.default = default
        self.by_team = dict(by_team or {})

    def runs_for(self, team_id: str | None) -> AgentRuns:
        return self.by_team.get(team_id or "", self.default)

    async def close(self) -> None:
        """The shared model client belongs to the default's runs: closed once, there."""
        await self.default.close()
