"""The dispatcher's wiring that needs no provider call: what loading a batch teaches the
process (a real SQLite database; no send is made)."""

from __future__ import annotations

from pathlib import Path

from tidings.config import Settings
from tidings.logging import mask_text
from tidings.providers.registry import Providers
from tidings.runtime import Runtime
from tidings.store import providers
from tidings.store.database import Database
from tidings.store.keyring import KeyRing
from tidings.workers.dispatcher import Dispatcher


async def test_a_configuration_added_elsewhere_is_masked_once_a_batch_is_loaded(
    tmp_path: Path,
) -> None:
    # Another process's API stored this configuration after this worker started: its key
    # reaches this process only through the database.
    key = "key-added-by-another-process-0123456789"
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}")
    await db.upgrade()
    client = Providers()
    try:
        rt = Runtime(settings=Settings(), db=db, keyring=KeyRing(None, []))
        assert key in mask_text(f"answer: {key}")
        async with db.write() as conn:
            await providers.create(
                conn,
                provider="mailgun",
                settings={"api_key": key, "domain": "mg.example.test"},
            )
        await Dispatcher(rt, client)._load([])
        masked = mask_text(f"answer: {key}")
        assert key not in masked and masked.endswith(key[-4:])
    finally:
        await client.close()
        await db.close()
