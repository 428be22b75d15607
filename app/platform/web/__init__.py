"""The platform's web layer: what reads a request or writes a response (FastAPI, Starlette).

Domain code (services, repositories, models, interfaces, listeners) never imports it; routers and
dependencies do. The framework-free halves stay beside it: ``errors``, ``security``, ``db``.
"""
