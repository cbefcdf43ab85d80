"""``/api/v2/settings/summary``."""

from __future__ import annotations

from ..conftest import Api

URL = "/api/v2/settings/summary"


async def test_read_set_keep_clear(api: Api) -> None:
    headers = await api.headers()
    assert (await api.client.get(URL, headers=headers)).json()["data"] == {
        "base_instructions": None,
        "enabled": False,
    }
    set_ = await api.client.patch(
        URL, json={"base_instructions": "  Always mention the ticket number. "}, headers=headers
    )
    assert set_.status_code == 200
    assert set_.json()["data"] == {
        "base_instructions": "Always mention the ticket number.",
        "enabled": False,
    }
    kept = await api.client.patch(URL, json={}, headers=headers)
    assert kept.json()["data"] == {
        "base_instructions": "Always mention the ticket number.",
        "enabled": False,
    }
    assert (await api.client.get(URL, headers=headers)).json()["data"] == {
        "base_instructions": "Always mention the ticket number.",
        "enabled": False,
    }
    cleared = await api.client.patch(URL, json={"base_instructions": None}, headers=headers)
    assert cleared.json()["data"] == {"base_instructions": None, "enabled": False}
    blank = await api.client.patch(URL, json={"base_instructions": "   "}, headers=headers)
    assert blank.json()["data"] == {"base_instructions": None, "enabled": False}


async def test_enable_automatic_summaries(api: Api) -> None:
    headers = await api.headers()
    on = await api.client.patch(
        URL, json={"enabled": True, "base_instructions": "Name the product."}, headers=headers
    )
    assert on.json()["data"] == {"base_instructions": "Name the product.", "enabled": True}
    kept = await api.client.patch(URL, json={"base_instructions": None}, headers=headers)
    assert kept.json()["data"] == {"base_instructions": None, "enabled": True}
    off = await api.client.patch(URL, json={"enabled": False}, headers=headers)
    assert off.json()["data"]["enabled"] is False
    bad = await api.client.patch(URL, json={"enabled": "yes please"}, headers=headers)
    assert bad.status_code == 400


async def test_rejects(api: Api) -> None:
    headers = await api.headers()
    too_long = await api.client.patch(URL, json={"base_instructions": "x" * 4001}, headers=headers)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["message"] == (
        "body.base_instructions: String should have at most 4000 characters"
    )
    form = await api.client.patch(URL, data={"base_instructions": "x"}, headers=headers)
    assert form.status_code == 415
    assert form.json()["error"]["message"] == (
        "Content-Type must be application/json, got application/x-www-form-urlencoded"
    )
    missing = await api.client.patch(URL, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "body: Field required"
