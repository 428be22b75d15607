"""auth: accounts, credentials, sessions and roles.

Owns users, password hashes, refresh-token families, verification and reset tokens.
"""
