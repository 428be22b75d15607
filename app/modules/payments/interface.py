"""The public surface of the payments module: the only file other modules may import.

Frozen DTOs, events, public errors and facade functions are declared here as the module grows.
"""

__all__: list[str] = []
