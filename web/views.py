"""The pages a person reads: home with the try-it form, get a key, run a worker, status, docs."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods

from accounts import services as accounts
from jptranscribe.errors import ServiceError, error_body
from jptranscribe.net import client_ip
from web import docs, stats


def api_base(request) -> str:
    """Examples name this server, so they can be pasted as they are."""
    return settings.JPT_PUBLIC_BASE_URL or request.build_absolute_uri("/").rstrip("/")


# The pages load only their own scripts and styles and talk only to this site.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)


def page(request, template, status=200, **context):
    context.setdefault("base", api_base(request))
    response = render(request, f"web/{template}", {"limits": limits(), **context}, status=status)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def limits():
    return {
        "demos_per_day": settings.JPT_DEMOS_PER_IP_PER_DAY,
        "demo_max_seconds": settings.JPT_DEMO_MAX_SECONDS,
        "max_seconds": settings.JPT_MAX_CLIP_SECONDS,
        "max_mb": settings.JPT_MAX_UPLOAD_BYTES // 1_048_576,
        "keys_per_day": settings.JPT_KEYS_PER_IP_PER_DAY,
        "requests": readable_rate(settings.JPT_RATE_USER),
    }


def readable_rate(rate: str) -> str:
    """A rate setting's "30/m" as "30 per minute"."""
    count, _, unit = rate.partition("/")
    period = {"s": "second", "m": "minute", "h": "hour", "d": "day"}.get(unit[-1:].lower(), unit)
    if unit[:-1].isdigit():
        period = f"{unit[:-1]} {period}s"
    return f"{count} per {period}"


@require_GET
@ensure_csrf_cookie
def home(request):
    return page(request, "home.html", figures=stats.status_figures())


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie
def get_key(request):
    """The button mints through /api with JavaScript; without it, this form post does the same."""
    if request.method == "GET":
        return page(request, "get_key.html")
    try:
        key, raw_key = accounts.key_mint(ip=client_ip(request))
    except ServiceError as refused:
        return page(request, "get_key.html", status=refused.status, error=refused.message)
    response = page(request, "get_key.html", minted={"key": raw_key, "key_prefix": key.prefix})
    response["Cache-Control"] = "no-store"  # the key is in this page and nowhere else
    return response


@require_GET
def worker(request):
    from worker_client.models import CATALOGUE, DEFAULT_MODEL, OFFLINE_FALLBACK

    return page(
        request,
        "worker.html",
        models=CATALOGUE.values(),
        default_model=DEFAULT_MODEL["vosk"],
        fallback_model=OFFLINE_FALLBACK,
    )


@require_GET
def status(request):
    figures = stats.status_figures()
    return page(request, "status.html", figures={**figures, "hours": chart_bars(figures["hours"])})


def chart_bars(hours):
    """The chart drawn on the server too, so the page reads right without JavaScript."""
    top = max([h["jobs_done"] for h in hours] + [1])
    bars = []
    for i, h in enumerate(hours):
        height = round(130 * h["jobs_done"] / top)
        bars.append(
            {**h, "x": i * 20 + 2, "y": 140 - height, "height": height, "label": h["hour"][11:16], "tick": i % 6 == 0}
        )
    return bars


@csrf_exempt  # read-only; other methods get the API's 405, not a CSRF page
@cache_control(max_age=5)
def status_json(request):
    """The figures /status/ draws, for any monitor: pool now, the last 24 h, per hour."""
    if request.method not in ("GET", "HEAD"):
        return JsonResponse(
            error_body("method_not_allowed", f'Method "{request.method}" not allowed.'),
            status=405,
            headers={"Allow": "GET, HEAD"},
        )
    return JsonResponse(stats.status_figures())


@require_GET
def api_docs(request):
    return page(request, "docs.html", endpoints=docs.endpoints(api_base(request)), errors=docs.error_table())
