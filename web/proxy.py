"""The browser proxy: the /v1 API mounted under /api for same-origin calls from the pages.

Pages carry no key. A call without `Authorization` acts under the browser key (demo route
only, limits per IP), so the proxy must not be usable from other sites: every unsafe call
passes Django's CSRF check (Origin/Referer against this host, plus the token the pages put
in a header). A visitor sees only the transcriptions this browser session started.
"""
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.http import JsonResponse
from django.middleware import csrf
from django.utils.decorators import decorator_from_middleware
from django.views.csrf import csrf_failure as html_csrf_failure
from django.views.decorators.csrf import csrf_exempt

from jptranscribe.errors import error_body

PREFIX = "/api"
SESSION_JOBS = "browser_jobs"
SESSION_JOBS_KEPT = 20


class HeaderTokenCsrfMiddleware(csrf.CsrfViewMiddleware):
    """Django's CSRF check (Origin/Referer, cookie), with the token taken from the
    X-CSRFToken header only: reading a form field would parse an upload before the
    transcribe view sets its streaming 10 MB limit."""

    def _check_token(self, request):
        try:
            secret = self._get_secret(request)
        except csrf.InvalidTokenFormat as exc:
            raise csrf.RejectRequest(f"CSRF cookie {exc.reason}.")
        if secret is None:
            raise csrf.RejectRequest(csrf.REASON_NO_CSRF_COOKIE)
        token = request.META.get(settings.CSRF_HEADER_NAME, "")
        if not token:
            raise csrf.RejectRequest(csrf.REASON_CSRF_TOKEN_MISSING)
        try:
            csrf._check_token_format(token)
        except csrf.InvalidTokenFormat as exc:
            raise csrf.RejectRequest(self._bad_token_message(exc.reason, settings.CSRF_HEADER_NAME))
        if not csrf._does_token_match(token, secret):
            raise csrf.RejectRequest(self._bad_token_message("incorrect", settings.CSRF_HEADER_NAME))


csrf_protect_by_header = decorator_from_middleware(HeaderTokenCsrfMiddleware)


def browser_proxy(view):
    """Wrap a /v1 view for /api: the header-only CSRF check, then the same view."""

    def proxied(request, *args, **kwargs):
        request.via_browser_proxy = True
        anonymous = not request.META.get("HTTP_AUTHORIZATION")
        job_id = kwargs.get("job_id")
        if anonymous and job_id and job_id not in request.session.get(SESSION_JOBS, []):
            return JsonResponse(error_body("not_found", "No transcription with this id in this browser."),
                                status=404)
        response = view(request, *args, **kwargs)
        data = getattr(response, "data", None)
        if isinstance(data, dict):
            if anonymous and str(data.get("id", "")).startswith("tx_"):
                remember_job(request.session, data["id"])
            if "status_url" in data:
                data["status_url"] = under_prefix(data["status_url"])
        if response.has_header("Location"):
            response["Location"] = under_prefix(response["Location"])
        return response

    # Exempt from the site-wide check (which reads form fields); the wrapper does its own.
    return csrf_exempt(csrf_protect_by_header(proxied))


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
        return JsonResponse(error_body(
            "csrf_failed",
            "The browser proxy only takes calls from this site's pages (CSRF check failed: "
            f"{reason}). Programs should call /v1 with 'Authorization: Bearer jpt_…'.",
        ), status=403)
    return html_csrf_failure(request, reason)
