from django.contrib import admin

from pool.admin import JobAdmin
from pool.models import Job
from transcription import services, webhooks
from transcription.models import DisabledWebhookUrl, WebhookDelivery

# Jobs gain what only transcription knows: erasing a result clears everything kept of its words.
admin.site.unregister(Job)


@admin.register(Job)
class JobWithErasureAdmin(JobAdmin):
    actions = [*JobAdmin.actions, "erase"]

    @admin.action(
        permissions=["change"],
        description="Erase results (text, segments, translation, prompt) of the finished ones; billing is kept",
    )
    def erase(self, request, queryset):
        erased = services.transcriptions_erase(Job.objects.filter(pk__in=queryset.values("pk")))
        self.message_user(request, f"Erased the results of {erased} finished jobs.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Callers' webhook events: what was sent where, how it went, and "retry now"."""

    list_display = [
        "id",
        "job",
        "key_prefix",
        "url",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["=id", "=job__id", "=key__prefix", "url"]
    list_select_related = ["key"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["retry_now"]
    show_full_result_count = False
    ordering = ["-created_at"]

    @admin.display(description="key")
    def key_prefix(self, delivery):
        return delivery.key.prefix

    @admin.action(permissions=["change"], description="Retry the selected deliveries now")
    def retry_now(self, request, queryset):
        count = webhooks.webhook_retry_now(queryset)
        self.message_user(
            request, f"{count} deliveries are due now (waiting ones stay waiting for their transcription)."
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DisabledWebhookUrl)
class DisabledWebhookUrlAdmin(admin.ModelAdmin):
    """URLs that answered 410 Gone; deleting a row turns the URL on again for its key."""

    list_display = ["url", "key", "disabled_at"]
    search_fields = ["=key__prefix", "url"]
    list_select_related = ["key"]
    readonly_fields = ["key", "url", "disabled_at"]

    def has_add_permission(self, request):
        return False
