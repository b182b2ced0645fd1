# Build: dependencies into a virtualenv. Run: a slim image, non-root, migrations then gunicorn.
FROM python:3.11-slim AS build
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY service ./service
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app proms
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY gunicorn.conf.py alembic.ini openapi.yaml pyproject.toml README.md ./
COPY migrations ./migrations
COPY questionnaires ./questionnaires
COPY service ./service
# The checkout's own copy of the package is the one imported, so that PROJECT_ROOT is /app.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation -e . && mkdir -p /app/var && chown proms /app/var
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PROMS_HOST=0.0.0.0 \
    PROMS_PORT=8080
USER proms
EXPOSE 8080
# The web server. Run `proms worker` as a second container from the same image (subscription notifications
# and bulk exports), sharing PROMS_DATABASE_URL and a volume for PROMS_EXPORT_DIR. Production needs
# PROMS_AUTH_ISSUER and PROMS_AUTH_JWKS_URL (PROMS_AUTH=jwt is the default and refuses to start without them).
CMD ["sh", "-c", "proms db upgrade && proms questionnaires load && exec proms serve"]
