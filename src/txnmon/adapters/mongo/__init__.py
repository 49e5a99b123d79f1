"""Every MongoDB call txnmon makes; nothing else in txnmon imports pymongo.

`MongoStore` (store.py) is the generic store: lifecycle, schema, idempotent writes and reads over
plain dicts. Each repository is a small class built on a store for one collection's protocol:
cases, named lists, the risk models' versions, the notifications outbox, job leases, dead-letter re-drive claims and the
processor's watermarks. All of them share one pooled client per deployment and raise only
`StoreUnavailable` or `StoreRefused` (client.py).
"""

from txnmon.adapters.mongo.cases import CasesRepository
from txnmon.adapters.mongo.leases import LeasesRepository
from txnmon.adapters.mongo.lists import ListsRepository
from txnmon.adapters.mongo.models import ModelVersionsRepository
from txnmon.adapters.mongo.outbox import OutboxRepository
from txnmon.adapters.mongo.redrive import RedriveRepository
from txnmon.adapters.mongo.store import MongoStore, UpsertResult
from txnmon.adapters.mongo.watermarks import WatermarksRepository

__all__ = [
    "CasesRepository",
    "LeasesRepository",
    "ListsRepository",
    "ModelVersionsRepository",
    "MongoStore",
    "OutboxRepository",
    "RedriveRepository",
    "UpsertResult",
    "WatermarksRepository",
]
