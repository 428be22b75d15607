"""The business domains. Each is independent; they meet only through each other's interface.py."""
