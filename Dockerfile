# The bot's container image: its runtime dependencies only, run as a non-root user.
#
#   podman build --format docker -t chatbot .          (docker build -t chatbot .)
#   podman run --env-file .env -v chatbot-data:/app/data chatbot
#
# BASE is any Debian-like image with Python 3.11+ and its venv module: python:3.12-slim
# from a registry, or one built from Debian's own packages where no registry is reachable
# (README "### Container"). HEALTHCHECK is part of Docker's image format, not OCI's:
# podman keeps it only when building with --format docker.
ARG BASE=python:3.12-slim
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

# The dependencies before the code, so that a change to the code alone reuses this layer.
# PIP_CERT: the system's CA bundle rather than pip's own copy, so a build behind a
# TLS-inspecting proxy trusts what the host trusts (mount the host's bundle over it).
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
    && PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
       /opt/venv/bin/pip install --no-cache-dir --quiet -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid bot --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin bot

WORKDIR /app
# What .dockerignore leaves: the bot's code (no tests, bench, .env, data or caches).
COPY . /app
# Byte-compiled once here: the user cannot write to /app, and each start would redo it.
# data/ is the one writable place: the SQLite file when DATABASE_URL is not PostgreSQL.
RUN python -m compileall -q /app \
    && mkdir -p /app/data && chown bot:bot /app/data
VOLUME ["/app/data"]

USER 10001:10001

# bot.py handles SIGTERM as Ctrl+C: answers under way are closed off with a note, then it
# exits 0. It runs as PID 1 and installs its own handler, so no init process is needed.
STOPSIGNAL SIGTERM

# Liveness: /healthz when HEALTH_PORT is set (healthy with no port: nothing to ask). Not
# /readyz: a spare waiting for its shards is alive and well but not ready, and would be
# "unhealthy" for as long as it waits (`docker compose up --scale bot=2`). /readyz stays
# for load balancers and monitoring that should see which process serves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; p = os.environ.get('HEALTH_PORT'); p and u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]

CMD ["python", "bot.py"]
