"""Observability: structured logging, metrics, SQL instrumentation."""
