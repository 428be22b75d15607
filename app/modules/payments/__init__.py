"""payments: the product catalog, checkout, orders, charges, refunds and provider webhooks.

Owns products, orders, payments, refunds and idempotency records.
"""
