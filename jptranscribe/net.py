import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    """The caller's address: the socket peer, or X-Forwarded-For only behind a trusted proxy.

    Walks the forwarded chain from the right and stops at the first address that is
    not one of our proxies, so a client cannot forge its way past a limit.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    trusted = settings.JPT_TRUSTED_PROXIES
    if not trusted or peer not in trusted:
        return peer
    chain = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for address in reversed(chain):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return peer
        if address not in trusted:
            return address
    return peer
