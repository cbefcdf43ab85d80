"""Instance-wide key/value settings."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from sipscribe.store.kv import add_setting, delete_setting, get_setting, set_setting


async def test_set_get_replace_delete(session) -> None:
    assert await get_setting(session, key="k") is None
    await set_setting(session, key="k", value={"a": [1, 2]})
    assert await get_setting(session, key="k") == {"a": [1, 2]}
    await set_setting(session, key="k", value="plain")
    session.expunge_all()
    assert await get_setting(session, key="k") == "plain"
    assert await delete_setting(session, key="k") is True
    assert await delete_setting(session, key="k") is False
    assert await get_setting(session, key="k") is None


async def test_add_is_a_claim(session) -> None:
    await add_setting(session, key="claim", value=1)
    with pytest.raises(IntegrityError):
        await add_setting(session, key="claim", value=2)
    await session.rollback()
    assert await get_setting(session, key="claim") == 1
