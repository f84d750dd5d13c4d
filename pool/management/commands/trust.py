from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey
from accounts.services import key_resolve
from pool import verification
from pool.models import Strike

LEVELS = {
    "new": "its pool results are held until a worker of another key agrees",
    "trusted": "its pool results are delivered at once and spot-checked",
    "quarantined": "its workers take only its own key's jobs",
}


class Command(BaseCommand):
    help = "Vouch for a worker key, clear its quarantine, or show its record as a source of pool results."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        for action, text in (
            ("grant", "trust the key at once (lifts a quarantine and clears its strikes)"),
            (
                "clear",
                "lift the key's quarantine and clear the strikes behind it: its workers take others' jobs again, "
                "as a new key's (a key not quarantined is left as it is)",
            ),
            ("show", "the key's level, checks, agreements and recent strikes"),
        ):
            sub.add_parser(action, help=text).add_argument("key", help="the full key or its prefix (jpt_XXXXXXXX)")

    def handle(self, *args, action, key, **options):
        try:
            api_key = key_resolve(key)
        except (ApiKey.DoesNotExist, ApiKey.MultipleObjectsReturned) as exc:
            raise CommandError(str(exc))
        outcome = ""
        if action == "grant":
            verification.trust_grant(key_id=api_key.pk)
        elif action == "clear":
            cleared = verification.quarantine_clear(key_id=api_key.pk)
            outcome = "quarantine cleared, its strikes with it; " if cleared else "not quarantined, nothing changed; "
        trust = verification.trust_of(api_key.pk)
        self.stdout.write(f"{api_key.prefix}: {outcome}{trust.level} ({LEVELS[trust.level]})")
        if action != "show":
            return
        strikes = Strike.objects.filter(key_id=api_key.pk).order_by("-created_at")
        cleared_strikes = strikes.filter(cleared_at__isnull=False).count()
        self.stdout.write(
            f"  checks {trust.checks}, agreed {trust.agreements}, in a row {trust.consecutive_agreements}"
            f" (trusted from {trust.TRUSTED_AFTER}); strikes {trust.strikes}"
            + (f" ({cleared_strikes} cleared by an operator)" if cleared_strikes else "")
            + f", {verification.standing_strikes(api_key.pk).count()} standing in the last 24 h"
            f" (quarantined at {settings.JPT_QUARANTINE_STRIKES})"
            + (f"; quarantined since {trust.quarantined_at:%Y-%m-%d %H:%M:%S}" if trust.quarantined_at else "")
        )
        for strike in strikes[:20]:
            when = f" (cleared {strike.cleared_at:%Y-%m-%d %H:%M:%S})" if strike.cleared_at else ""
            self.stdout.write(
                f"  {strike.created_at:%Y-%m-%d %H:%M:%S}  {strike.job_id or '-':<24} {strike.reason}{when}"
            )
