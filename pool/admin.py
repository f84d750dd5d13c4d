from collections import Counter

from django.contrib import admin, messages
from django.utils.html import format_html_join

from accounts.admin import ApiKeyAdmin
from accounts.models import ApiKey
from pool import services, verification
from pool.models import Job, JobAttempt, JobResult, KeyTrust, Strike, Worker

# Keys gain what only the pool knows about: their workers.
admin.site.unregister(ApiKey)


@admin.register(ApiKey)
class ApiKeyWithWorkersAdmin(ApiKeyAdmin):
    actions = [*ApiKeyAdmin.actions, "ban_workers"]

    @admin.action(permissions=["change"], description="Ban the selected keys from running workers")
    def ban_workers(self, request, queryset):
        for key in queryset:
            services.worker_ban(key=key)
        self.message_user(request, f"Banned workers of {queryset.count()} keys; their jobs were re-queued.")


class OnlineFilter(admin.SimpleListFilter):
    """The same rule routing uses: seen recently, not signed off, not banned."""

    title = "online now"
    parameter_name = "online"

    def lookups(self, request, model_admin):
        return [("yes", "Online"), ("no", "Offline")]

    def queryset(self, request, queryset):
        online = Worker.objects.online().values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=online)
        if self.value() == "no":
            return queryset.exclude(pk__in=online)
        return queryset


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "online",
        "last_seen_at",
        "engine",
        "model",
        "version",
        "jobs_done",
        "jobs_failed",
        "rtf",
        "trust",
    ]
    list_filter = [OnlineFilter, "engine", "key__is_server"]
    search_fields = ["=key__prefix", "name", "client_id"]
    list_select_related = ["key", "key__trust"]
    readonly_fields = [f.name for f in Worker._meta.fields]
    actions = ["ban"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a worker holding a job must not vanish under it: ban the key instead

    @admin.display(boolean=True)
    def online(self, worker):
        return worker.is_online

    @admin.display(description="trust")
    def trust(self, worker):
        record = getattr(worker.key, "trust", None)  # loaded with the row (no trust record: a new key)
        return record.level if record is not None else KeyTrust.Level.NEW

    @admin.display(description="real-time factor")
    def rtf(self, worker):
        rtf = worker.real_time_factor
        return f"{rtf:.2f}" if rtf is not None else "—"

    @admin.action(
        permissions=["change"], description="Ban these workers' keys from running workers (jobs in hand are re-queued)"
    )
    def ban(self, request, queryset):
        keys = {worker.key for worker in queryset}
        for key in keys:
            services.worker_ban(key=key)
        self.message_user(request, f"Banned {len(keys)} keys from running workers.")


class AttemptInline(admin.TabularInline):
    model = JobAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("worker", "started_at", "ended_at", "outcome", "error")


class ResultInline(admin.TabularInline):
    """Every worker's transcript of the clip, side by side, with its distance to the final text."""

    model = JobResult
    fk_name = "job"
    extra = 0
    can_delete = False
    fields = readonly_fields = ("key", "worker", "verdict", "cer", "text", "implausible", "created_at")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "key", "route", "status", "duration_seconds", "worker", "attempts", "created_at"]
    list_filter = ["status", "route", "created_at"]
    search_fields = ["=id", "=key__prefix", "=worker__client_id"]
    list_select_related = ["key", "worker", "worker__key"]
    show_full_result_count = False
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [AttemptInline, ResultInline]
    actions = ["requeue", "cancel"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # deleting would keep a held job's credits and demo: cancel it, which gives them back

    @admin.action(permissions=["change"], description="Re-queue (a held job goes back to the queue)")
    def requeue(self, request, queryset):
        left: Counter[str] = Counter()
        for job in queryset:
            if services.job_requeue(job=job) is None:
                left[job.status] += 1
            else:
                self.log_change(request, job, "Re-queued")
        self.report(request, "re-queued", len(queryset) - left.total(), left, "only a held job can be re-queued")

    @admin.action(permissions=["change"], description="Cancel (reserved credits and demos are given back)")
    def cancel(self, request, queryset):
        left: Counter[str] = Counter()
        for job in queryset:
            if services.job_cancel(job=job, message=services.CANCELLED_BY_OPERATOR) is None:
                left[job.status] += 1
            else:
                self.log_change(request, job, "Cancelled")  # who did it: in the job's history, not told its caller
        self.report(
            request, "cancelled", len(queryset) - left.total(), left, "a job that has ended cannot be cancelled"
        )

    def report(self, request, done: str, changed: int, left: Counter[str], why: str) -> None:
        """What an action really changed, and what it left as it was and why: a warning when it
        left anything, so an operator never reads success for a job the action could not touch."""
        if not left:
            self.message_user(request, f"{done.capitalize()} {changed} {jobs(changed)}.", messages.SUCCESS)
            return
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(left.items()))
        unchanged = left.total()
        if changed:
            were = "was" if unchanged == 1 else "were"
            said = f"{done.capitalize()} {changed} {jobs(changed)}; {unchanged} {were} not {done}"
        else:
            said = f"No job was {done}"
        self.message_user(request, f"{said} ({statuses}): {why}.", messages.WARNING)


def jobs(count: int) -> str:
    return "job" if count == 1 else "jobs"


@admin.register(KeyTrust)
class KeyTrustAdmin(admin.ModelAdmin):
    """Worker keys as sources of results: trust level, checks passed and failed, strikes, quarantine."""

    list_display = [
        "key",
        "level",
        "checks",
        "agreements",
        "failed_checks",
        "consecutive_agreements",
        "strikes",
        "quarantined_at",
    ]
    list_filter = [("quarantined_at", admin.EmptyFieldListFilter)]
    search_fields = ["=key__prefix"]
    list_select_related = ["key"]
    readonly_fields = [
        "key",
        "checks",
        "agreements",
        "consecutive_agreements",
        "strikes",
        "quarantined_at",
        "recent_strikes",
    ]
    actions = ["clear_quarantine", "grant_trust"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    @admin.display(description="strikes, newest first")
    def recent_strikes(self, trust):
        strikes = Strike.objects.filter(key_id=trust.key_id).order_by("-created_at")[:20]
        return (
            format_html_join(
                "\n",
                "<p>{} · {} · {}{}</p>",
                (
                    (
                        s.created_at,
                        s.job_id or "—",
                        s.reason,
                        f" · cleared {s.cleared_at:%Y-%m-%d %H:%M}" if s.cleared_at else "",
                    )
                    for s in strikes
                ),
            )
            or "none"
        )

    @admin.display(description="failed checks")
    def failed_checks(self, trust):
        return trust.checks - trust.agreements

    @admin.action(
        permissions=["change"], description="Clear the quarantine and its strikes (the key starts again as new)"
    )
    def clear_quarantine(self, request, queryset):
        cleared = sum(verification.quarantine_clear(key_id=trust.key_id) for trust in queryset)
        unchanged = queryset.count() - cleared
        self.message_user(
            request,
            f"Cleared the quarantine of {cleared} keys."
            + (f" {unchanged} were not quarantined and are unchanged." if unchanged else ""),
        )

    @admin.action(permissions=["change"], description="Trust these keys (their results are spot-checked, not held)")
    def grant_trust(self, request, queryset):
        for trust in queryset:
            verification.trust_grant(key_id=trust.key_id)
        self.message_user(request, f"Trusted {queryset.count()} keys.")


@admin.register(JobResult)
class FailedCheckAdmin(admin.ModelAdmin):
    """Results outvoted by a check: each beside the text the job ended with, and their distance."""

    list_display = ["job", "key", "cer", "their_text", "final_text", "implausible", "created_at"]
    list_filter = ["verdict"]
    search_fields = ["=job__id", "=key__prefix"]
    list_select_related = ["job", "key"]
    readonly_fields = [f.name for f in JobResult._meta.fields]
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(verdict=JobResult.Verdict.OUTVOTED)

    @admin.display(description="their text")
    def their_text(self, result):
        return result.text[:200]

    @admin.display(description="the job's text")
    def final_text(self, result):
        return result.job.text[:200]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
