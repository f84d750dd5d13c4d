"""gunicorn settings. Long-polls and waiting transcribe calls each hold a thread for
seconds to minutes, so each process runs many threads; the database pool (PostgreSQL)
keeps connections few because waiting threads hand theirs back."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
# SQLite is one node and one writer: one process lets its in-process wake-ups reach every waiter.
workers = int(os.environ.get("JPT_WEB_WORKERS") or (2 if os.environ.get("DATABASE_URL") else 1))
threads = int(os.environ.get("JPT_WEB_THREADS", "256"))
# Waiting requests are not stuck workers: the timeout is only for a process that stops responding.
timeout = 180
graceful_timeout = 30
keepalive = 30
accesslog = os.environ.get("JPT_ACCESS_LOG") or None


def post_worker_init(worker):
    """Run the apps' start hooks, and on SIGTERM their stop hooks first: open long-polls and waits
    end at once (claims answer "no job", transcribe answers 202) instead of holding the shutdown
    for up to their full wait."""
    import signal

    from jptranscribe import lifecycle

    stop = signal.getsignal(signal.SIGTERM)
    assert callable(stop), "gunicorn's worker installs its SIGTERM handler before this hook"

    def stop_hooks_then_stop(signum, frame):
        lifecycle.stopping()
        stop(signum, frame)

    signal.signal(signal.SIGTERM, stop_hooks_then_stop)
    lifecycle.started()
