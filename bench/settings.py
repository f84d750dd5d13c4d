"""The site's settings with the bench's URLs (bench/urls.py): only bench/request_cost.py runs a server
with them (DJANGO_SETTINGS_MODULE=bench.settings), so production URLs never include the bare view."""

from jptranscribe.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
