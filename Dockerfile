# The service's one image, for every role: a web node (the default command), `proms worker`, and the one-off
# `proms init` that migrates the database and loads the questionnaire library and the outcome measures before
# the first start.
# docs/deploy.md walks through running it; tests/deploy/test_image.py repeats its install step on every test run.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin proms

WORKDIR /app
# The package first, so that a change to the library or the migrations reuses the installed layer.
COPY deploy/install.sh deploy/install.sh
COPY pyproject.toml README.md ./
COPY service ./service
RUN sh deploy/install.sh /opt/venv
COPY gunicorn.conf.py alembic.ini openapi.yaml ./
COPY migrations ./migrations
COPY questionnaires ./questionnaires
COPY measures ./measures
COPY terminology ./terminology
COPY docs ./docs
# The code stays root's and read-only. Export files and clinician-app sessions are in the database; the service
# writes under var/ only when PROMS_DATABASE_URL names no database (a SQLite file there, for trying the image out).
RUN mkdir -p var && chown proms:proms var && chmod 700 var

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PROMS_HOST=0.0.0.0 \
    PROMS_PORT=8080
USER 10001:10001
EXPOSE 8080
# Healthy when this node's /readyz answers 200: the database answers and is at the latest migration.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["proms", "ready"]
# Only serves: migrating and loading the library is `proms init`, run once per release (docs/deploy.md).
# Needs PROMS_DATABASE_URL, PROMS_BASE_URL, PROMS_AUTH_ISSUER and PROMS_AUTH_JWKS_URL; refuses to start without.
CMD ["proms", "serve"]
