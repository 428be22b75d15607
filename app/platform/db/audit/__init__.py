"""The database audit: top statements per node, their plans, proven index advice, health checks.

``python -m app db audit`` runs it (docs/db-audit.md); :func:`runner.run_audit` is the entry point.
"""
