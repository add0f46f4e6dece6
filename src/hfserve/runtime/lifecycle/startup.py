"""What the engine does when it starts and while it runs in the background: check that
every known model can be served, load the ``preload`` models, unload idle ones."""

from __future__ import annotations

import asyncio
import logging

from hfserve.config import Settings
from hfserve.errors import UnservableModels
from hfserve.runtime.lifecycle.manager import ModelManager
from hfserve.types import ModelState

log = logging.getLogger("hfserve.engine")
IDLE_TICK_S = 5.0


def check_models(manager: ModelManager, settings: Settings) -> None:
    """Read every model's spec and find its skill. A configured model that cannot be served
    fails the start (unless ``skip_unservable_models``: then it is failed and let go); a
    discovered one becomes unsupported."""
    unservable = []
    for entry in manager.entries.values():
        try:
            manager.check(entry)
        except Exception:
            if not settings.skip_unservable_models:
                unservable.append(f"{entry.name}: {entry.error}")
            else:
                log.error("model %s is skipped: %s", entry.name, entry.error)
            entry.skipped = True
    if unservable:
        message = ("cannot serve the configured model(s) " + "; ".join(unservable) +
                   " (fix the config, or set skip_unservable_models to start without them)")
        log.error("%s", message)
        raise UnservableModels(message)


async def preload(manager: ModelManager, settings: Settings, names: list[str]) -> None:
    await manager.load_all(names)
    for name in names:
        entry = manager.entries.get(name)
        if entry is not None and entry.state == ModelState.FAILED and \
                settings.skip_unservable_models:
            entry.skipped = True
            log.error("model %s is skipped: %s", name, entry.error)


async def reap_idle(manager: ModelManager, settings: Settings) -> None:
    """Unload models idle past their TTL, looking a few times per shortest TTL (models
    registered later with a TTL of their own count too)."""
    while True:
        ttls = [t for t in [settings.idle_ttl_s,
                            *(e.config.idle_ttl_s for e in manager.entries.values())] if t]
        await asyncio.sleep(min(max(min(ttls) / 4, 0.05), IDLE_TICK_S) if ttls
                            else IDLE_TICK_S)
        try:
            await manager.unload_idle(settings.idle_ttl_s)
        except Exception:  # a failed unload must not end the reaper
            log.exception("unloading idle models failed")
