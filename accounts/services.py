from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import credits, quotas, statements
from accounts.models import BROWSER_KEY_HASH, BROWSER_KEY_PREFIX, ApiKey, WebhookSecret, hash_key, new_webhook_secret
from jptranscribe.errors import RateLimited
from jptranscribe.sql import run


def seconds_until_tomorrow() -> int:
    now = timezone.now()
    tomorrow = datetime.combine(now.date() + timedelta(days=1), time.min, tzinfo=UTC)
    return int((tomorrow - now).total_seconds()) + 1


def key_mint(*, ip: str) -> tuple[ApiKey, str]:
    """A new key for this caller, within the keys-per-IP-per-day limit."""
    limit = settings.JPT_KEYS_PER_IP_PER_DAY
    with transaction.atomic():
        if not quotas.quota_take(scope=quotas.KEYS, subject=ip, limit=limit):
            raise RateLimited(
                f"Limit of {limit} new keys per IP per day reached; try again tomorrow (UTC).",
                retry_after=seconds_until_tomorrow(),
            )
        return ApiKey.mint(created_ip=ip or None)


def webhook_secret_rotate(*, key: ApiKey) -> str:
    """Make the key's webhook signing secret, or replace it: the one it replaces keeps signing
    beside it for JPT_WEBHOOK_SECRET_OVERLAP_HOURS (one older than that stops at once)."""
    new = new_webhook_secret()
    with transaction.atomic():
        current = WebhookSecret.objects.select_for_update().filter(key=key).first()
        if current is None:
            WebhookSecret.objects.create(key=key, secret=new)
        else:
            current.previous_secret, current.secret, current.rotated_at = current.secret, new, timezone.now()
            current.save()
    return new


def webhook_signing_secrets(key_id: int) -> list[str]:
    """The secrets a delivery for this key is signed with now (none before the key made one)."""
    current = WebhookSecret.objects.filter(key_id=key_id).first()
    return current.signing_secrets() if current else []


def key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.forget_cached()


def key_restore(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=None)
    key.forget_cached()


def demos_left_today(ip: str) -> int:
    return quotas.quota_remaining(scope=quotas.DEMOS, subject=ip, limit=settings.JPT_DEMOS_PER_IP_PER_DAY)


@dataclass(frozen=True)
class AccountFigures:
    credits_seconds: Decimal
    credits_pending_seconds: Decimal
    demos_left_today: int


def account_figures(*, key: ApiKey, ip: str) -> AccountFigures:
    """What /v1/account shows of the key's credits and the caller's demos, read in one round trip:
    as `credits.credits_balance`, `credits.credits_pending` and `demos_left_today` say."""
    answer = run(
        statements.ACCOUNT_FIGURES,
        {"key_id": key.pk, **quotas.quota_params(scope=quotas.DEMOS, subject=ip)},
    )
    return AccountFigures(
        credits_seconds=credits.balance_seconds(answer.value("milliseconds")),
        credits_pending_seconds=credits.seconds(answer.value("pending_seconds") or 0),
        demos_left_today=quotas.quota_left(limit=settings.JPT_DEMOS_PER_IP_PER_DAY, used=answer.value("quota_used")),
    )


def key_resolve(identifier: str) -> ApiKey:
    """An operator names a key by its full value or by its prefix."""
    if len(identifier) > 12:
        key = ApiKey.objects.filter(hashed_key=hash_key(identifier)).first()
    else:
        matches = list(ApiKey.objects.filter(prefix=identifier)[:2])
        if len(matches) > 1:
            raise ApiKey.MultipleObjectsReturned(f"More than one key starts with {identifier}; give the full key.")
        key = matches[0] if matches else None
    if key is None:
        raise ApiKey.DoesNotExist(f"No key matches {identifier}.")
    return key


def server_key_ensure(raw_key: str) -> ApiKey:
    """The demo worker's credential: registered as a server key however the database was reset."""
    key = ApiKey.objects.filter(hashed_key=hash_key(raw_key)).first()
    if key is None:
        key, _ = ApiKey.mint(raw_key=raw_key, is_server=True, note="server demo worker")
    elif not key.is_server or key.revoked_at:
        ApiKey.objects.filter(pk=key.pk).update(is_server=True, revoked_at=None)
        key.forget_cached()
    return key


def browser_key() -> ApiKey:
    """The key that anonymous page visitors act under through /api: demos only, limits per IP.

    It has no raw value, so nobody can send it as a bearer token."""
    key, _ = ApiKey.objects.get_or_create(
        hashed_key=BROWSER_KEY_HASH,
        defaults={"prefix": BROWSER_KEY_PREFIX, "note": "anonymous visitors of the web pages"},
    )
    return key
