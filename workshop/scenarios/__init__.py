"""The workshop's scenarios, by letter (the claims of docs/workshop.md)."""

from __future__ import annotations

from workshop.core import Scenario
from workshop.scenarios.a_coupling import OutboxIsolation
from workshop.scenarios.b_bulkhead import ReportBulkhead
from workshop.scenarios.c_canary import CatalogCanary
from workshop.scenarios.d_index import IndexAudit
from workshop.scenarios.e_eager import EagerLoading
from workshop.scenarios.f_replica import ReplicaReads

SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (
        OutboxIsolation(),
        ReportBulkhead(),
        CatalogCanary(),
        IndexAudit(),
        EagerLoading(),
        ReplicaReads(),
    )
}
