"""gunicorn settings for the service, from the same PROMS_* variables as everything else."""

import os
import tempfile

from service.cli import banner, settings_for_gunicorn

# Settings it cannot serve with stop gunicorn here, before it binds or boots a worker: one line, exit status 2.
_settings = settings_for_gunicorn()

bind = f"[{_settings.host}]:{_settings.port}" if ":" in _settings.host else f"{_settings.host}:{_settings.port}"
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
# The service is stopped and scaled by signals and its orchestrator. gunicorn's control socket would sit at one
# path per user ($HOME/.gunicorn), shared by every instance on a machine, and in a container $HOME is read-only.
control_socket_disable = True
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # workers' heartbeat files in memory, never on a container's overlay disk


def on_starting(server):  # type: ignore[no-untyped-def]
    # Workers share metrics through files: each scrape of /metrics sums every worker.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="proms-metrics-")


def when_ready(server):  # type: ignore[no-untyped-def]
    print(banner(_settings), flush=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
