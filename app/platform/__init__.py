"""The kernel every module stands on: settings, database, events, observability, errors.

Nothing in here imports a business module.
"""
