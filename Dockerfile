# syntax=docker/dockerfile:1
# Multi-stage image: dependencies are built in `build`, the runtime stage runs as a non-root
# user with static files collected at build time. Serve with daphne (HTTP + WebSocket).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN python -m venv /opt/venv && /opt/venv/bin/pip install uv
COPY pyproject.toml README.md ./
COPY aikeedo ./aikeedo
COPY apps ./apps
RUN /opt/venv/bin/uv pip install --python /opt/venv/bin/python .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=aikeedo.settings.production
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system app && useradd --system --gid app --home /app app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=app:app . .
# collectstatic needs settings to load; these build-time values never reach the runtime.
RUN DJANGO_SECRET_KEY=build-only-build-only-build-only-build-only-build-only-build \
    DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput \
    && chown -R app:app /app/staticfiles
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
# No --proxy-headers: daphne would set the client address from the first X-Forwarded-For entry,
# the one a client writes itself. The app reads the header only from the proxies listed in
# TRUSTED_PROXIES (e.g. -e TRUSTED_PROXIES=10.0.0.0/8), taking the right-most untrusted entry.
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "aikeedo.asgi:application"]
