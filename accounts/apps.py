from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Keys and credits"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from accounts.models import ApiKey

        def forget(sender, instance, **kwargs):
            instance.forget_cached()

        # Saves outside the services (the admin's change form) must not leave a stale key cached.
        post_save.connect(forget, sender=ApiKey, dispatch_uid="forget-cached-key")
        post_delete.connect(forget, sender=ApiKey, dispatch_uid="forget-cached-key-delete")

        from accounts import schema  # noqa: F401 - registers the bearer key with the OpenAPI generator
