"""may_decide: who may approve or reject a call, decided from plain data."""

from collections.abc import Collection, Mapping, Sequence

from bot.approvals.authorization import Verdict, may_decide

REQUESTER = "U0REQUESTER"


def _decide(
    user_id: str,
    approvers: Sequence[str],
    *,
    requesters: Collection[str] = (REQUESTER,),
    group_members: Mapping[str, Collection[str]] | None = None,
    allow_self_approval: bool = False,
) -> Verdict:
    return may_decide(
        user_id=user_id,
        requesters=requesters,
        approvers=approvers,
        group_members=group_members or {},
        allow_self_approval=allow_self_approval,
    )


def test_a_direct_approver_may_decide() -> None:
    verdict = _decide("U0ALICE", ["U0BOB", "U0ALICE"])

    assert verdict.allowed is True


def test_a_member_of_an_approver_group_may_decide() -> None:
    verdict = _decide("U0ALICE", ["S0ADMINS"], group_members={"S0ADMINS": {"U0BOB", "U0ALICE"}})

    assert verdict.allowed is True


def test_a_member_of_some_other_group_may_not_decide() -> None:
    verdict = _decide(
        "U0ALICE",
        ["S0ADMINS"],
        group_members={"S0ADMINS": {"U0BOB"}, "S0OTHERS": {"U0ALICE"}},
    )

    assert verdict.allowed is False
    assert verdict.reason


def test_a_group_whose_members_are_unknown_lets_nobody_through() -> None:
    verdict = _decide("U0ALICE", ["S0ADMINS"])

    assert verdict.allowed is False


def test_a_user_id_in_the_members_of_a_user_id_approver_does_not_count() -> None:
    # Only user groups (S…) have members; a user approver is matched on its own id.
    verdict = _decide("U0ALICE", ["U0BOB"], group_members={"U0BOB": {"U0ALICE"}})

    assert verdict.allowed is False


def test_a_non_approver_is_refused_with_a_reason() -> None:
    verdict = _decide("U0MALLORY", ["U0ALICE", "S0ADMINS"], group_members={"S0ADMINS": {"U0BOB"}})

    assert verdict.allowed is False
    assert "not one of the approvers" in verdict.reason


def test_the_requester_is_refused_even_when_an_approver() -> None:
    verdict = _decide(REQUESTER, [REQUESTER, "U0ALICE"])

    assert verdict.allowed is False
    assert "self-approval" in verdict.reason


def test_the_requester_is_refused_even_through_a_group() -> None:
    verdict = _decide(REQUESTER, ["S0ADMINS"], group_members={"S0ADMINS": {REQUESTER}})

    assert verdict.allowed is False
    assert "self-approval" in verdict.reason


def test_the_requester_may_decide_when_self_approval_is_allowed() -> None:
    verdict = _decide(REQUESTER, [REQUESTER], allow_self_approval=True)

    assert verdict.allowed is True


def test_self_approval_does_not_make_a_non_approver_an_approver() -> None:
    verdict = _decide(REQUESTER, ["U0ALICE"], allow_self_approval=True)

    assert verdict.allowed is False
    assert verdict.reason


def test_no_approvers_means_nobody_may_decide() -> None:
    for user in ("U0ALICE", REQUESTER):
        verdict = _decide(user, [], allow_self_approval=True)
        assert verdict.allowed is False
        assert "No approvers" in verdict.reason


def test_every_requester_is_refused_not_only_the_first() -> None:
    """A person whose message was carried into the run asked for its calls too."""
    for user in (REQUESTER, "U0LATER"):
        verdict = _decide(user, [REQUESTER, "U0LATER"], requesters=[REQUESTER, "U0LATER"])
        assert verdict.allowed is False
        assert "self-approval" in verdict.reason


def test_a_later_requester_is_refused_even_through_a_group() -> None:
    verdict = _decide(
        "U0LATER",
        ["S0ADMINS"],
        requesters=[REQUESTER, "U0LATER"],
        group_members={"S0ADMINS": {"U0LATER", "U0BOB"}},
    )

    assert verdict.allowed is False
    assert "self-approval" in verdict.reason


def test_an_approver_who_asked_nothing_may_decide_a_call_many_asked_for() -> None:
    verdict = _decide(
        "U0BOB",
        ["S0ADMINS"],
        requesters=[REQUESTER, "U0LATER"],
        group_members={"S0ADMINS": {"U0LATER", "U0BOB"}},
    )

    assert verdict.allowed is True


def test_any_requester_may_decide_when_self_approval_is_allowed() -> None:
    verdict = _decide(
        "U0LATER", ["U0LATER"], requesters=[REQUESTER, "U0LATER"], allow_self_approval=True
    )

    assert verdict.allowed is True
