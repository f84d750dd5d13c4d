from django.apps import AppConfig


class PoolConfig(AppConfig):
    name = "pool"
    verbose_name = "Worker pool"

    def ready(self):
        from jptranscribe import lifecycle
        from pool import leases, verification, wakeup

        # A stopping server answers its open long-polls and waits at once.
        lifecycle.on_stop(wakeup.hub.close)
        # Held results whose checks ended undecided, and earnings past their holding period.
        leases.on_maintenance(verification.checks_maintenance)
