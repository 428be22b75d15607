"""A modular-monolith SaaS backend: auth, payments, notifications and analytics, one deployable."""
