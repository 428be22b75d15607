"""The OpenAPI document is the contract the server keeps: schemathesis against the app in-process.

Every operation is generated from the document (examples, coverage, fuzzing) and chained by the
stateful phase (schemathesis infers the transitions from the document: ids one answer returns and
another takes), as an anonymous caller, a member and an admin, with a fixed seed and a bounded
number of examples. Any server error or any answer the document does not describe
(status, content type, body schema, required headers, ``Allow``) fails the test.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import events, from_schema

from app.main import create_app
from app.platform.config import Settings
from tests.contract.conftest import bearer
from tools.pgstack import Stack

SEED = 20261201
MAX_EXAMPLES = 12
STATEFUL_STEPS = 40
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "allow_header_conformance",
)


@dataclass
class Tally:
    """What one run did: operations seen, cases sent, and failures by check."""

    operations: set[str] = field(default_factory=set)
    cases: int = 0
    by_phase: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, phase: str, recorder: Any) -> None:
        self.cases += len(recorder.cases)
        self.by_phase[phase] += len(recorder.cases)
        for node in recorder.cases.values():
            self.operations.add(node.value.operation.label)
        for checks in recorder.checks.values():
            for check in checks:
                if check.failure_info is None:
                    continue
                self.failures[check.name] += 1
                failure = check.failure_info.failure
                seen = self.examples.setdefault(check.name, [])
                if len(seen) < 8:
                    seen.append(f"{failure.operation}: {failure.title}: {failure.message[:300]}")


def _config(headers: dict[str, str], *, coverage: bool) -> schemathesis.Config:
    checks: dict[str, Any] = {"enabled": False}
    checks.update({name: {"enabled": True} for name in CHECKS})
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "checks": checks,
            "phases": {
                "coverage": {"enabled": coverage},
                "stateful": {"max-steps": STATEFUL_STEPS},
            },
        }
    )


def _run(app: Any, headers: dict[str, str], *, coverage: bool = True) -> Tally:
    config = _config(headers, coverage=coverage)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    tally = Tally()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            tally.add(str(event.phase.value), event.recorder)
        elif isinstance(event, events.FatalError):
            raise event.exception
    return tally


@pytest.fixture
def tokens(settings: Settings, contract_db: Stack) -> dict[str, dict[str, str]]:
    return {
        "anonymous": {},
        "member": bearer(settings, contract_db, "member"),
        "admin": bearer(settings, contract_db, "admin"),
    }


def test_the_server_keeps_its_openapi_contract(
    settings: Settings, tokens: dict[str, dict[str, str]]
) -> None:
    app = create_app(settings)
    operations = sum(
        1
        for item in app.openapi()["paths"].values()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    )
    started = time.monotonic()
    # The coverage phase (every parameter's boundaries and wrong types, ~1,000 cases) runs for the
    # anonymous caller and the admin, who between them reach every branch; the member's run is
    # examples, fuzzing and the stateful phase, to keep the test within its budget.
    report = {who: _run(app, headers, coverage=who != "member") for who, headers in tokens.items()}
    elapsed = time.monotonic() - started
    lines = [f"schemathesis: {operations} operations, {elapsed:.0f} s"] + [
        f"  {who}: {len(t.operations)} operations, {t.cases} cases {dict(t.by_phase)}, "
        f"failures {dict(t.failures) or 0}"
        for who, t in report.items()
    ]
    for who, t in report.items():
        for check, examples in t.examples.items():
            lines += [f"  --- {who}, {check}:", *(f"    {e}" for e in examples)]
    print("\n".join(lines))
    assert all(not t.failures for t in report.values()), "\n".join(lines)
    assert all(len(t.operations) == operations for t in report.values()), "\n".join(lines)
    assert all(t.by_phase["stateful"] > 0 for t in report.values()), "\n".join(lines)
