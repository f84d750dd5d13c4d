from django.core.management.base import BaseCommand, CommandError

from accounts import credits
from accounts.models import ApiKey
from accounts.services import key_resolve


class Command(BaseCommand):
    help = "Grant or deduct pool credits, show a key's ledger, or check kept balances against the ledger."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        grant = sub.add_parser(
            "grant",
            help="add (or, negative, deduct) seconds of credit: not 0, at most ten years' worth, "
            "and a deduction at most the spendable balance",
        )
        grant.add_argument("key", help="the full key or its prefix (jpt_XXXXXXXX)")
        grant.add_argument("seconds", type=float)
        grant.add_argument("--reason", required=True)
        show = sub.add_parser("show", help="balance and recent ledger rows")
        show.add_argument("key")
        show.add_argument("--rows", type=int, default=20)
        reconcile = sub.add_parser(
            "reconcile",
            help="compare every kept balance with its ledger and repair it "
            "(after a rolling upgrade across accounts migration 0003)",
        )
        reconcile.add_argument("--check", action="store_true", help="only report; exit 1 if any differ")

    def handle(self, *args, action, key=None, **options):
        if action == "reconcile":
            return self.reconcile(check=options["check"])
        try:
            api_key = key_resolve(key)
        except (ApiKey.DoesNotExist, ApiKey.MultipleObjectsReturned) as exc:
            raise CommandError(str(exc))
        if action == "grant":
            try:
                entry = credits.credits_grant(
                    key=api_key, amount=options["seconds"], reason=options["reason"], actor="manage.py credits"
                )
            except ValueError as exc:
                raise CommandError(f"{api_key.prefix}: nothing changed. {exc}")
            self.stdout.write(
                f"{api_key.prefix}: {float(entry.seconds):+g} s; balance {float(credits.credits_balance(api_key)):g} s"
            )
        else:
            self.stdout.write(f"{api_key.prefix}: balance {float(credits.credits_balance(api_key)):g} s")
            for entry in api_key.credit_entries.all()[: options["rows"]]:
                self.stdout.write(
                    f"  {entry.created_at:%Y-%m-%d %H:%M:%S}  {entry.kind:<8} {float(entry.seconds):>+10g} s"
                    f"  {entry.job_ref or '-':<24} {entry.reason}"
                )

    def reconcile(self, *, check: bool):
        differing = credits.credits_reconcile(repair=not check)
        prefixes = dict(
            ApiKey.objects.filter(pk__in=[key_id for key_id, _, _ in differing]).values_list("pk", "prefix")
        )
        for key_id, kept, ledger in differing:
            self.stdout.write(
                f"{prefixes.get(key_id, key_id)}: kept {float(kept):g} s, ledger {float(ledger):g} s"
                + ("" if check else " (repaired)")
            )
        self.stdout.write(
            f"{len(differing)} balance(s) {'differ' if check else 'repaired'}; the rest match the ledger."
        )
        if check and differing:
            raise CommandError("Kept balances differ from the ledger: run `credits reconcile` to repair them.")
