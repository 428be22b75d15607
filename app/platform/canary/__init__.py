"""The correctness canary: a synthetic journey through the public API that compares what it wrote
with what users read back (run by the worker; see docs/runbooks/CanaryPayloadMismatch.md)."""
