"""The gunicorn worker class: uvicorn, as this application needs it."""

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "auto",  # uvloop
        "http": "auto",  # httptools
        # The client address is the socket's peer: X-Forwarded-For is read by the app, and only from
        # JPT_TRUSTED_PROXIES (jptranscribe/net.py), never rewritten by the server.
        "proxy_headers": False,
        "server_header": False,
        "lifespan": "on",  # the start and stop hooks (jptranscribe/asgi.py); a failure there stops the process
    }
