"""What a server process does when it starts and when it is told to stop.

Apps register their hooks in `AppConfig.ready()`, so the server's configuration
(`gunicorn.conf.py`) runs them without naming any app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
_on_start: list[Callable[[], None]] = []
_on_stop: list[Callable[[], None]] = []


def on_start(hook: Callable[[], None]) -> None:
    """Run `hook` once the process is serving (e.g. to load a model before the first request)."""
    if hook not in _on_start:
        _on_start.append(hook)


def on_stop(hook: Callable[[], None]) -> None:
    """Run `hook` when the process is told to stop (e.g. to answer open long-polls at once)."""
    if hook not in _on_stop:
        _on_stop.append(hook)


def started() -> None:
    for hook in _on_start:
        hook()


def stopping() -> None:
    for hook in _on_stop:
        try:
            hook()
        except Exception:  # one failing hook must not keep the others from running
            log.exception("stop hook %s failed", hook)
