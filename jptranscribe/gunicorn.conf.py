"""gunicorn settings: gunicorn starts and watches the processes, uvicorn serves HTTP in each
(`jptranscribe.asgi`). A request that waits (a long-polled claim, a transcribe call waiting for
its text) awaits its wake-up on the event loop and holds no thread; requests' sync code runs on
JPT_WEB_THREADS threads per process (jptranscribe/asgi.py), and the database pool (PostgreSQL)
keeps connections few because waiting requests hold none."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "jptranscribe.asgi_worker.Worker"
# SQLite is one node and one writer: one process lets its in-process wake-ups reach every waiter.
workers = int(os.environ.get("JPT_WEB_WORKERS") or (2 if os.environ.get("DATABASE_URL") else 1))
# A process that stops answering gunicorn's heartbeat for this long is restarted.
timeout = 180
# On SIGTERM open long-polls and waits answer at once (jptranscribe/asgi.py runs the stop hooks);
# requests under way get this long to finish.
graceful_timeout = 30
keepalive = 30
accesslog = os.environ.get("JPT_ACCESS_LOG") or None
# gunicorn's control socket (for `gunicornc`) is off: nothing here uses it (`manage.py serve`
# supervises the processes), and its default path is one per user, not per server, so a second
# server on the machine took it over and the first to stop deleted it.
control_socket_disable = True
