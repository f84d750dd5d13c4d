"""The browser proxy: the /v1 API mounted under /api for same-origin calls from the pages.

Pages carry no key. A call without `Authorization` acts under the browser key (demo route
only, limits per IP), so the proxy must not be usable from other sites: every unsafe call
passes Django's CSRF check (Origin/Referer against this host, plus the token the pages put
in a header). A visitor sees only the transcriptions this browser session started.
"""

import copy
from urllib.parse import urlsplit, urlunsplit

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware import csrf
from django.views.csrf import csrf_failure as html_csrf_failure
from django.views.decorators.csrf import csrf_exempt

from accounts.auth import mark_via_browser_proxy
from jptranscribe.errors import error_body
from jptranscribe.waiting import Parked
from pool.models import is_job_id

PREFIX = "/api"
SESSION_JOBS = "browser_jobs"
SESSION_JOBS_KEPT = 20


def _checked_view(request: HttpRequest) -> HttpResponse:
    """What Django's check is told it guards: never called, and (unlike DRF's views, which are
    all `csrf_exempt`) not exempt, so the check always runs."""
    raise AssertionError("only a stand-in for Django's CSRF check")


_csrf = csrf.CsrfViewMiddleware(_checked_view)


def csrf_refusal(request):
    """Django's own CSRF check (Origin/Referer against this site, the token against the cookie),
    with the token read from the X-CSRFToken header only; None when the call passes.

    For a POST, Django reads the token from the form fields first, which would parse an upload
    before the transcribe view sets its streaming 10 MB limit. So the check runs on a copy of the
    request that says PUT, for which Django takes the token from the header: same headers,
    cookies and scheme, and the body is never touched."""
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return None
    header_only = copy.copy(request)
    header_only.method = "PUT"
    return _csrf.process_view(header_only, _checked_view, (), {})


def browser_proxy(view):
    """Wrap a /v1 view for /api: the header-only CSRF check, then the same view. A view that may
    wait (`waiting_view`) stays one: its answer is fixed up once it comes."""

    def proxied(request, *args, **kwargs):
        refused = csrf_refusal(request)
        if refused is not None:
            return refused
        mark_via_browser_proxy(request)
        anonymous = not request.META.get("HTTP_AUTHORIZATION")
        job_id = kwargs.get("job_id")
        if anonymous and job_id and job_id not in request.session.get(SESSION_JOBS, []):
            return JsonResponse(error_body("not_found", "No transcription with this id in this browser."), status=404)
        response = view(request, *args, **kwargs)
        if isinstance(response, Parked):  # waiting for its job: the session learns the job now
            if anonymous and response.wait.subject is not None:
                remember_job(request.session, response.wait.subject.pk)
            response.then.append(under_prefix_in)
            return response
        data = getattr(response, "data", None)
        if anonymous and isinstance(data, dict) and is_job_id(data.get("id")):
            remember_job(request.session, data["id"])
        return under_prefix_in(response)

    proxied.parks = getattr(view, "parks", False)  # type: ignore[attr-defined]
    # Exempt from the site-wide check (which reads form fields); the wrapper does its own.
    return csrf_exempt(proxied)


def under_prefix_in(response):
    """The answer's links (`status_url`, Location) under /api."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and "status_url" in data:
        data["status_url"] = under_prefix(data["status_url"])
    if response.has_header("Location"):
        response["Location"] = under_prefix(response["Location"])
    return response


def remember_job(session, job_id):
    jobs = [j for j in session.get(SESSION_JOBS, []) if j != job_id]
    session[SESSION_JOBS] = (jobs + [job_id])[-SESSION_JOBS_KEPT:]


def under_prefix(url: str) -> str:
    parts = urlsplit(url)
    if parts.path.startswith("/v1/"):
        parts = parts._replace(path=PREFIX + parts.path)
    return urlunsplit(parts)


def csrf_failure(request, reason=""):
    """In the API's envelope on /api; Django's own page elsewhere (the admin's forms)."""
    if request.path.startswith(PREFIX + "/"):
        return JsonResponse(
            error_body(
                "csrf_failed",
                "The browser proxy only takes calls from this site's pages (CSRF check failed: "
                f"{reason}). Programs should call /v1 with 'Authorization: Bearer jpt_…'.",
            ),
            status=403,
        )
    return html_csrf_failure(request, reason)
