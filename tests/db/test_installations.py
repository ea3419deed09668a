"""The installation store Bolt's OAuth flow writes through, on both databases."""

from slack_sdk.oauth.installation_store import Installation

from bot.slack.installation_store import DatabaseInstallationStore
from bot.slack.oauth_state_store import DatabaseOAuthStateStore
from storage import schema
from storage.crypto import Cipher
from storage.database import Database


def workspace(team_id: str, token: str, *, installer: str = "U1") -> Installation:
    return Installation(
        app_id="A0APP",
        team_id=team_id,
        bot_token=token,
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes=["chat:write", "commands"],
        user_id=installer,
    )


def org(enterprise_id: str, token: str) -> Installation:
    return Installation(
        app_id="A0APP",
        enterprise_id=enterprise_id,
        team_id=None,
        bot_token=token,
        bot_user_id="UBOTORG",
        user_id="UADMIN",
        is_enterprise_install=True,
    )


async def test_installing_again_replaces_the_workspace_installation(db: Database) -> None:
    store = DatabaseInstallationStore(db)
    await store.async_save(workspace("T1", "xoxb-first"))
    await store.async_save(workspace("T1", "xoxb-second", installer="U2"))

    found = await store.async_find_installation(enterprise_id=None, team_id="T1")

    assert found is not None
    assert (found.bot_token, found.user_id) == ("xoxb-second", "U2")
    assert found.bot_scopes == ["chat:write", "commands"]
    assert (
        await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1") is None
    )


async def test_a_workspace_of_an_org_is_served_by_its_own_install_before_the_org_wide_one(
    db: Database,
) -> None:
    store = DatabaseInstallationStore(db)
    await store.async_save(org("E1", "xoxb-org"))
    await store.async_save(workspace("T2", "xoxb-own"))

    for_t1 = await store.async_find_bot(enterprise_id="E1", team_id="T1")
    for_t2 = await store.async_find_bot(enterprise_id="E1", team_id="T2")
    asked_as_org = await store.async_find_bot(
        enterprise_id="E1", team_id="T2", is_enterprise_install=True
    )

    assert for_t1 is not None
    assert for_t1.bot_token == "xoxb-org"
    assert for_t2 is not None
    assert for_t2.bot_token == "xoxb-own"
    assert asked_as_org is not None
    assert asked_as_org.bot_token == "xoxb-org"
    assert await store.async_find_bot(enterprise_id="E9", team_id="T9") is None


async def test_deleting_one_workspace_leaves_the_others(db: Database) -> None:
    store = DatabaseInstallationStore(db)
    await store.async_save(workspace("T1", "xoxb-one"))
    await store.async_save(workspace("T2", "xoxb-two"))

    await store.async_delete_all(enterprise_id=None, team_id="T1")

    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T2") is not None


async def test_a_state_works_once_even_from_another_process(database_url: str) -> None:
    cipher = Cipher.from_setting(Cipher.generate_key())
    first, second = Database(database_url, cipher=cipher), Database(database_url, cipher=cipher)
    try:
        if first.is_sqlite:
            await schema.upgrade(first)
        issued = await DatabaseOAuthStateStore(first, expiration_seconds=600).async_issue()
        store = DatabaseOAuthStateStore(second, expiration_seconds=600)

        assert await store.async_consume(issued) is True
        assert await store.async_consume(issued) is False
        assert await store.async_consume("never-issued") is False
    finally:
        await first.dispose()
        await second.dispose()
