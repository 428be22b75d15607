"""What the audit reports: statements, plan summaries, index advice and findings, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Statement:
    """One ``pg_stat_statements`` entry of one node, with who issues it when the app can tell."""

    node: str
    queryid: int
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    max_ms: float
    rows: int
    shared_hit: int
    shared_read: int
    share: float  # of the node's total time over the statements the audit counts
    module: str | None = None
    route: str | None = None


@dataclass
class PlanSummary:
    """What an ``EXPLAIN (ANALYZE, BUFFERS)`` of one statement says, in a few lines."""

    node: str
    queryid: int
    parameters: str  # "sampled", "reconstructed", "none"
    analyzed: bool
    total_ms: float | None
    costliest: list[dict[str, Any]] = field(default_factory=list)
    seq_scans: list[dict[str, Any]] = field(default_factory=list)
    misestimates: list[dict[str, Any]] = field(default_factory=list)
    disk_sorts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Measurement:
    """The statement re-run with its parameters: p50 of the execution time and of the buffers."""

    runs: int
    p50_ms: float
    buffers: int


@dataclass
class Advice:
    """A candidate index for one statement, with what HypoPG and (with --verify) timing said."""

    node: str
    queryid: int
    table: str
    columns: list[str]
    include: list[str]
    where: str | None
    definition: str
    calls: int
    cost_before: float
    cost_after: float
    status: str  # "hypothetical", "verified", "applied", "rejected"
    reason: str = ""
    before: Measurement | None = None
    after: Measurement | None = None
    estimated_size_bytes: int | None = None
    write_cost: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_drop(self) -> float:
        return 1 - self.cost_after / self.cost_before if self.cost_before > 0 else 0.0

    @property
    def speedup(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.before.p50_ms / max(self.after.p50_ms, 1e-3)

    @property
    def saved_ms(self) -> float:
        """Time saved over the statement's recorded calls, from the measured drop (0 unmeasured)."""
        if self.before is not None and self.after is not None:
            return self.calls * max(0.0, self.before.p50_ms - self.after.p50_ms)
        return 0.0

    @property
    def key(self) -> str:
        where = f" WHERE {self.where}" if self.where else ""
        return f"missing_index:{self.table}({', '.join(self.columns)}){where}"


@dataclass
class Finding:
    """One health check's finding: what, where, the evidence, and the SQL that fixes it."""

    check: str
    subject: str
    message: str
    fix_sql: str
    node: str = "all"
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.check}:{self.subject}"


@dataclass
class Report:
    """Everything one audit run found."""

    database: str
    nodes: list[str]
    top: dict[str, list[Statement]]
    plans: list[PlanSummary]
    advice: list[Advice]
    rejected: list[Advice]
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)

    def keys(self) -> set[str]:
        """The identities a baseline compares: each finding and each piece of advice."""
        return {f.key for f in self.findings} | {a.key for a in self.advice}
