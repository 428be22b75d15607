"""notifications: email delivery and the in-app inbox.

Owns notifications, delivery attempts and per-user notification preferences.
"""
