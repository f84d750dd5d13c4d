"""The kept balance: what an existing ledger becomes when the balances table arrives."""
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts import credits

BEFORE, AFTER = ("accounts", "0002_cache_table"), ("accounts", "0003_creditbalance")


@pytest.fixture
def _every_migration_after():
    """Going back to BEFORE also undoes the other apps' migrations that came later: the tests
    after this one need them all again."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_migration_sums_each_keys_ledger_into_its_balance(_every_migration_after):
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    old = executor.loader.project_state([BEFORE]).apps
    ApiKey, CreditEntry = old.get_model("accounts", "ApiKey"), old.get_model("accounts", "CreditEntry")
    rich, spent, none = (ApiKey.objects.create(prefix=f"jpt_{n}", hashed_key=n) for n in ("rich", "spent", "none"))
    for key, amounts in ((rich, ["100.250", "-1.500", "0", "0.001"]), (spent, ["3", "-3"])):
        for i, amount in enumerate(amounts):
            CreditEntry.objects.create(key=key, kind="granted", seconds=Decimal(amount), job_ref=f"tx_{key.pk}_{i}")

    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    from accounts.models import ApiKey as Key

    assert credits.credits_balance(Key.objects.get(pk=rich.pk)) == Decimal("98.751")
    assert credits.credits_balance(Key.objects.get(pk=spent.pk)) == Decimal("0")
    assert credits.credits_balance(Key.objects.get(pk=none.pk)) == Decimal("0")
    assert credits.credits_reserve(key=Key.objects.get(pk=rich.pk), amount=98.751, job_ref="tx_new") == 0
