from django.db import migrations, models
from django.db.models import Sum


def sum_the_ledger(apps, schema_editor):
    CreditEntry = apps.get_model("accounts", "CreditEntry")
    CreditBalance = apps.get_model("accounts", "CreditBalance")
    totals = CreditEntry.objects.values("key_id").annotate(total=Sum("seconds"))
    CreditBalance.objects.bulk_create(
        [CreditBalance(key_id=row["key_id"], milliseconds=int(row["total"] * 1000)) for row in totals],
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_cache_table")]

    operations = [
        migrations.CreateModel(
            name="CreditBalance",
            fields=[
                ("key", models.OneToOneField(on_delete=models.deletion.CASCADE, primary_key=True,
                                             related_name="+", serialize=False, to="accounts.apikey")),
                ("milliseconds", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(sum_the_ledger, migrations.RunPython.noop),
    ]
