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


def address_block(address: str) -> str:
    """What a per-address limit counts: an IPv4 address, or an IPv6 address's /64.

    A subscriber gets at least a /64 from its provider, so its 2^64 addresses cost nothing:
    counting them one by one would let a single home mint keys and take demos without end."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
