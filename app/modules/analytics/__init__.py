"""analytics: product-event ingestion and funnel reports.

Owns raw events and report aggregates; reads on the replica, behind a bulkhead.
"""
