"""What runs when a dialled call stops: ``sendSummaryEmail``.

The call's last utterance must be stored before it is summarised, and the summary must be
processed before it is mailed, so the steps run in order: wait for the store, summarise
(the configured engine, with the tenant's base instructions), then e-mail. A failed summary
still sends the transcript, saying the summary is missing (see ``delivery.email``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sipscribe.api.jobs import combine_instructions, run_summary
from sipscribe.store import summaries as summary_store
from sipscribe.store import tenants as tenant_store

log = logging.getLogger("sipscribe.dialout")

#: How long to wait for the store to catch up with the ended call.
STORE_WAIT_S = 120.0
#: How long a summary already being made is waited for before one is made here.
SUMMARY_WAIT_S = 600.0


def make_stop_actions(
    services: Any, store_sink: Any, settings: Any
) -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
    """The dialer's ``stop_actions`` hook, bound to this server's services."""

    async def run(conn: Any) -> list[dict[str, Any]]:
        from sipscribe.delivery.email import send_summary_email

        results: list[dict[str, Any]] = []
        call_id, tenant_id = conn.conversation_id, conn.tenant_id
        await store_sink.wait_ended(call_id, STORE_WAIT_S)
        summarised = False
        for action in conn.request.actions:
            if action.get("name") != "sendSummaryEmail":
                continue
            try:
                if not summarised:
                    await _summarise(services, call_id, tenant_id)
                    summarised = True
                await send_summary_email(
                    services.database,
                    settings,
                    call_id=call_id,
                    tenant_id=tenant_id,
                    emails=list(action["emails"]),
                    session_name=conn.request.session_name,
                )
            except Exception as exc:
                log.warning(
                    "sendSummaryEmail for %s failed: %s", conn.id, exc, extra={"call_id": call_id}
                )
                results.append({"name": "sendSummaryEmail", "status": "failed", "error": str(exc)})
                continue
            log.info(
                "summary e-mail for %s sent to %d recipients",
                conn.id,
                len(action["emails"]),
                extra={"call_id": call_id},
            )
            results.append(
                {"name": "sendSummaryEmail", "status": "sent", "recipients": action["emails"]}
            )
        return results

    return run


async def _summarise(services: Any, call_id: str, tenant_id: str) -> None:
    """Make sure the call has a processed summary before the mail is built.

    One being made (the tenant's automatic summary, or a client's request) is waited for,
    not replaced; otherwise one is requested and run here, not in the background.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SUMMARY_WAIT_S
    while True:
        async with services.database.session() as session:
            existing = await summary_store.get_summary(
                session, call_id=call_id, tenant_id=tenant_id
            )
        state = existing.state if existing is not None else None
        if state == "processed":
            return
        if state != "created" or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    async with services.database.session() as session:
        summary = await summary_store.request_summary(session, call_id=call_id, instructions=None)
        tenant = await tenant_store.get_tenant(session, tenant_id=tenant_id)
        base = tenant_store.TenantSettings.of(tenant).summary_base_instructions if tenant else None
    await run_summary(
        services,
        summary_id=summary.id,
        call_id=call_id,
        tenant_id=tenant_id,
        instructions=combine_instructions(base, None),
    )
