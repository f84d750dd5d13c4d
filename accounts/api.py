"""Base views for key holders: per-key rate limits and their headers in one place."""

from django.conf import settings
from rest_framework import exceptions
from rest_framework.views import APIView

from accounts import usage as usage_counter
from accounts.auth import refuse
from jptranscribe import ratelimit
from jptranscribe.errors import RateLimited
from jptranscribe.net import address_block, client_ip


class KeyedView(APIView):
    """An endpoint for key holders: 30 requests a minute per key (the spec's limit)."""

    rate_group = "user"

    def rate(self):
        return settings.JPT_RATE_USER

    def counted_with_key(self, key_hash: str) -> tuple[ratelimit.Window, list[tuple[str, int]]]:
        """A bearer key's request counts its rate-limit window and its key's usage today in the
        round trip that reads the key (`accounts.auth`): the window of a key is named by its hash."""
        window = ratelimit.window(self.rate_group, key_hash, self.rate())
        return window, [(window.key, window.ttl), usage_counter.today(key_hash)]

    def initial(self, request, *args, **kwargs):
        """Counts the request in its rate-limit window and in the key's usage today: with the
        key's lookup when it was cached, else one round trip of its own."""
        super().initial(request, *args, **kwargs)
        counted = getattr(request, "rate_usage", None)
        if counted is None:
            window = ratelimit.window(self.rate_group, rate_subject(request), self.rate())
            (used,) = usage_counter.request_counted(request.user.hashed_key, (window.key, window.ttl))
            counted = (window, used)
        if self.rate_exempt(request.user):
            return  # counted in its usage today all the same
        self._rate_usage = counted
        window, used = counted
        if window.exceeded(used):
            raise RateLimited(
                f"Rate limit of {self.rate()} per key exceeded; retry in {window.seconds_left} s.",
                retry_after=window.seconds_left,
            )

    def rate_exempt(self, key) -> bool:
        """A key this endpoint never holds to its rate limit (and answers without the limit's headers)."""
        return False

    def permission_denied(self, request, message=None, code=None):
        """No key at all: a failed authentication, counted per address as a wrong key is."""
        if request.authenticators and not request.successful_authenticator:
            refuse(request, exceptions.NotAuthenticated("Missing API key: send 'Authorization: Bearer jpt_…'."))
        super().permission_denied(request, message, code)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        usage = getattr(self, "_rate_usage", None)
        if usage:
            window, used = usage
            response["X-RateLimit-Limit"] = str(window.limit)
            response["X-RateLimit-Remaining"] = str(window.remaining(used))
        return response


def rate_subject(request) -> str:
    """Limits count per key; web visitors share the browser key, so theirs count per IP."""
    if request.user.is_browser:
        return f"browser:{address_block(client_ip(request))}"
    return request.user.hashed_key  # as `KeyedView.counted_with_key` names it


class WorkerView(KeyedView):
    """The worker protocol: its own, larger budget so a busy worker never trips it."""

    rate_group = "worker"

    def rate(self):
        return settings.JPT_RATE_WORKER

    def rate_exempt(self, key) -> bool:
        """The server key's: its demo workers, one per app server, are the operator's own processes,
        as many as the nodes. One key's budget shared by all of them would run out as nodes are
        added; what they may hold at once is still bounded (claims waiting, max_jobs)."""
        return key.is_server
