# syntax=docker/dockerfile:1
# The API image. Two stages so the runtime carries the locked dependencies and the code, and
# neither uv nor pip's caches nor a compiler.
#
#   docker build -t saas-backend .
#   docker run --rm -e APP_DATABASE_URL=... saas-backend            # serve on :8000
#   docker run --rm -e APP_DATABASE_URL=... saas-backend python -m app migrate

# The Python the test suite runs on; the interpreter is shared by both stages because the venv
# built in the first links to it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN pip install uv==0.13.9

WORKDIR /build
# Only the lock and the manifest: the dependency layer is rebuilt when they change, not on
# every code edit. --frozen fails the build if uv.lock is out of date with pyproject.toml.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3


FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_HOST=0.0.0.0 \
    APP_PORT=8000

# A fixed numeric id, so orchestrators that check runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /srv/app
# pyproject.toml holds the Alembic configuration ([tool.alembic]); the app finds it, and
# migrations/, beside app/.
COPY pyproject.toml uv.lock ./
COPY migrations ./migrations
COPY app ./app
# Compiled now, as root: the code is read-only to the app's user, so it could not cache them later.
RUN python -m compileall -q app migrations

USER 10001:10001

EXPOSE 8000

# Liveness only (/healthz): a slow database must not get the container killed. The slim image has
# no curl, so the standard library does the request; urlopen raises on any non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]
