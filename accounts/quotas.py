"""Per-day quotas kept in the database, so every process and node sees one count.

A quota's subject is an address (keys and demos per IP a day); an IPv6 address counts as its
/64 (`jptranscribe.net.address_block`)."""

from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import DailyQuota
from jptranscribe.net import address_block
from jptranscribe.sql import db_value

DEMOS = "demo"
KEYS = "keys"


def today() -> date:
    return timezone.now().date()


def quota_take(*, scope: str, subject: str, limit: int, day: date | None = None) -> bool:
    """Use one unit if any is left. The conditional UPDATE makes it safe under concurrency."""
    subject = address_block(subject)
    day = day or today()
    with transaction.atomic():
        DailyQuota.objects.get_or_create(scope=scope, subject=subject, day=day)
        taken = DailyQuota.objects.filter(scope=scope, subject=subject, day=day, used__lt=limit).update(
            used=F("used") + 1
        )
    return taken == 1


def quota_give_back(*, scope: str, subject: str, day: date) -> None:
    subject = address_block(subject)
    DailyQuota.objects.filter(scope=scope, subject=subject, day=day, used__gt=0).update(used=F("used") - 1)


def quota_remaining(*, scope: str, subject: str, limit: int, day: date | None = None) -> int:
    subject = address_block(subject)
    row = DailyQuota.objects.filter(scope=scope, subject=subject, day=day or today()).first()
    return quota_left(limit=limit, used=row.used if row else None)


def quota_left(*, limit: int, used: int | None) -> int:
    """What is left of a quota its row says `used` (None: no row yet today)."""
    return max(0, limit - (used or 0))


def quota_params(*, scope: str, subject: str, day: date | None = None) -> dict[str, Any]:
    """The parameters naming a quota's row today, for a statement that reads it (`_QUOTA_USED`)."""
    return {"scope": scope, "subject": address_block(subject), "day": db_value(DailyQuota, "day", day or today())}
