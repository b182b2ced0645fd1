"""gunicorn settings for the service, from the same PROMS_* variables as everything else."""

import os
import tempfile

from service.config import Settings

_settings = Settings.from_env()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "service.serving.FreeThreadWorker"  # gthread that accepts only with a free thread
threads = _settings.threads
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs each request as a JSON line with its request id
errorlog = "-"
loglevel = _settings.log_level.lower()
wsgi_app = "service.wsgi:app"


def on_starting(server):  # type: ignore[no-untyped-def]
    # Workers share metrics through files: each scrape of /metrics sums every worker.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="proms-metrics-")


def when_ready(server):  # type: ignore[no-untyped-def]
    print(f"Recovery PROM service: FHIR API at {_settings.base_url} (Ctrl-C stops)", flush=True)
    from service.dev_launch import launcher_url  # development only: authentication off, loopback

    if (launcher := launcher_url(_settings)) is not None:
        print(f"Clinician app without an EHR (development launcher): {launcher}", flush=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
