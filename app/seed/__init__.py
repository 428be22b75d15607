"""The seed generator: realistic, deterministic demo data for every module's tables, via COPY.

``python -m app seed --preset small|large [--seed N]``. It sits beside the composition root, not in
a module: it is the one tool that writes several modules' tables (by table name, with COPY).
"""
