"""An app server for the workshop: the real app, plus the "before" routes a scenario mounts.

    python -m workshop.serve --port 8100 --variant coupled-checkout

The app is the deployable's own ``create_app()``; a variant only adds routes (under
``/workshop/``) that exist nowhere in the deployable.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

from app.main import create_app

# A variant's routes, as "module:router": the "before" code paths the scenarios mount.
VARIANTS: dict[str, str] = {
    "coupled-checkout": "workshop.godservice:router",
    "order-history": "workshop.order_history:router",
}


def build(variants: list[str]) -> FastAPI:
    application = create_app()
    for name in variants:
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(sorted(VARIANTS))}")
        module_name, _, attribute = VARIANTS[name].partition(":")
        module = __import__(module_name, fromlist=[attribute])
        application.include_router(getattr(module, attribute))
    return application


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m workshop.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--variant", action="append", default=[])
    args = parser.parse_args()
    uvicorn.run(
        build(args.variant),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
