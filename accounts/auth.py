from collections.abc import Sequence
from typing import NoReturn

from django.conf import settings
from django.core.cache import cache
from rest_framework import authentication, exceptions

from accounts.models import BROWSER_KEY_HASH, KEY_CACHE_SECONDS, ApiKey, cached_key_name, hash_key
from accounts.services import browser_key
from jptranscribe import ratelimit
from jptranscribe.cache import get_and_count
from jptranscribe.errors import RateLimited
from jptranscribe.net import address_block, client_ip

# Set on a request by the browser proxy (web/), after its CSRF check: only such a request may act
# under the browser key.
_VIA_BROWSER_PROXY = "jpt_via_browser_proxy"


def mark_via_browser_proxy(request) -> None:
    """Called by the browser proxy once a call has passed its CSRF check."""
    setattr(request, _VIA_BROWSER_PROXY, True)


def is_via_browser_proxy(request) -> bool:
    return getattr(request, _VIA_BROWSER_PROXY, False)


# Keys are read on every request; the shared cache saves that query. Every change to a key
# calls ApiKey.forget_cached() (the services, and a signal for the admin's saves), so revoking
# takes effect at once on every node.


_UNREAD = object()


def cached_key(hashed_key: str, load, *, cached=_UNREAD):
    """The key from the shared cache (`cached`: what it held, when already read), or from
    `load()` (then cached, unless the key changed a moment ago: see KEY_CHANGED; None is not cached)."""
    name = cached_key_name(hashed_key)
    if cached is _UNREAD:
        cached = cache.get(name)
    if isinstance(cached, ApiKey):
        return cached
    key = load()
    if key is not None and cached is None:
        cache.add(name, key, KEY_CACHE_SECONDS)
    return key


def key_for_bearer(raw_key: str, counts: Sequence[tuple[str, int]] = ()) -> tuple[ApiKey | None, list[int] | None]:
    """The key of a bearer token, and `counts` (names and times to live: the request's rate-limit
    window and usage) each added one in the same cache round trip when the cache held anything
    for the key (the key, or the mark of its recent change); None for the counts when it held
    nothing (the caller counts once it has the key)."""
    hashed = hash_key(raw_key)

    def load():
        key = ApiKey.objects.for_bearer(raw_key)
        if key is not None:
            # Last use is recorded when the key is (re)loaded: accurate to the cache period.
            key.touch()
        return key

    cached, counted = get_and_count(
        cached_key_name(hashed), [name for name, _ in counts], 1, [seconds for _, seconds in counts]
    )
    return cached_key(hashed, load, cached=cached), counted


def refuse(request, failure: exceptions.APIException) -> NoReturn:
    """A 401 — until an address has failed JPT_RATE_AUTH_FAILURES times in the period: then 429
    with Retry-After, so guessing keys or hammering without one costs the server little."""
    window, used = ratelimit.hit("auth-failed", address_block(client_ip(request)), settings.JPT_RATE_AUTH_FAILURES)
    if window.exceeded(used):
        wait = window.seconds_left
        raise RateLimited(
            f"Too many requests without a valid key from your address; retry in {wait} s.", retry_after=wait
        )
    raise failure


class BearerKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer jpt_…`; every failure is the same 401 to the caller.

    Anonymous calls through the browser proxy (/api) act under the browser key. Only the
    proxy marks a request so, after its CSRF check: on /v1 no header means no key. Revoking
    the browser key in the admin switches the web demo off."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:  # a keyed view refuses it (KeyedView.permission_denied); a public one serves it
            return self.authenticate_browser(request) if is_via_browser_proxy(request._request) else None
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != "bearer" or not raw_key.strip():
            refuse(request, exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer jpt_…'."))
        raw_key = raw_key.strip()
        # A keyed view counts the request's rate limit and usage with the key's lookup.
        view = (request.parser_context or {}).get("view")
        counting = getattr(view, "counted_with_key", None)
        window, counts = counting(hash_key(raw_key)) if counting else (None, ())
        key, counted = key_for_bearer(raw_key, counts)
        if window is not None and counted is not None:
            request.rate_usage = (window, counted[0])
        if key is None:
            refuse(request, exceptions.AuthenticationFailed("Invalid or revoked API key."))
        return key, key

    def authenticate_browser(self, request):
        key = cached_key(BROWSER_KEY_HASH, browser_key)
        if key.is_revoked:
            raise exceptions.AuthenticationFailed("The web demo is switched off; use the API with your own key.")
        return key, None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
