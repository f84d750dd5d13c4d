from rest_framework import authentication, exceptions

from accounts.models import ApiKey


class BearerKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer jpt_…`; every failure is the same 401 to the caller."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != "bearer" or not raw_key.strip():
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer jpt_…'.")
        key = ApiKey.objects.for_bearer(raw_key.strip())
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        key.touch()
        return key, key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
