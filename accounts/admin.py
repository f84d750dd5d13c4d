from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.shortcuts import render

from accounts import credits, services, usage
from accounts.models import ApiKey, CreditBalance, CreditEntry


class CreditForm(forms.Form):
    seconds = forms.DecimalField(max_digits=12, decimal_places=3, help_text="negative to deduct")
    reason = forms.CharField(max_length=300)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "created_at",
        "last_used_at",
        "requests_today",
        "revoked_at",
        "is_server",
        "workers_banned_at",
        "balance",
    ]
    list_filter = [
        "is_server",
        ("revoked_at", admin.EmptyFieldListFilter),
        ("workers_banned_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["=prefix", "prefix"]
    readonly_fields = (
        "prefix",
        "hashed_key",
        "created_at",
        "created_ip",
        "last_used_at",
        "revoked_at",
        "workers_banned_at",
        "balance",
        # The demo worker's key is made by `serve`; a server key claims demo jobs and earns nothing.
        "is_server",
    )
    fields = (*readonly_fields, "note")
    # Banning a key's workers is added by the pool's admin, which knows workers.
    actions = ["revoke", "restore", "grant_credits"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False  # keys are minted through the API, which shows the raw key once

    def has_delete_permission(self, request, obj=None):
        return False  # a key is revoked, never deleted: its jobs and its ledger stay

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # One cache round trip for the whole page, not one per row (the page's rows are
        # evaluated once and kept, so the counts stay on the instances that get rendered).
        keys = list(changelist.result_list)
        counts = usage.requests_today(keys)
        for key in keys:
            key.requests_today_count = counts[key.pk]
        return changelist

    @admin.display(description="requests today")
    def requests_today(self, key):
        if not hasattr(key, "requests_today_count"):
            return usage.requests_today([key])[key.pk]
        return key.requests_today_count

    def get_queryset(self, request):
        # The kept balance, as the API shows it: the same number, read the same way, for a whole page.
        kept = CreditBalance.objects.filter(key=OuterRef("pk")).values("milliseconds")
        return super().get_queryset(request).annotate(_balance_ms=Subquery(kept))

    @admin.display(description="credits (s)", ordering="_balance_ms")
    def balance(self, key):
        kept = getattr(key, "_balance_ms", None)  # None: no ledger row yet, so nothing kept
        return float(credits.seconds_of(kept or 0))

    @admin.action(permissions=["change"], description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            services.key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} keys.")

    @admin.action(permissions=["change"], description="Restore the selected keys")
    def restore(self, request, queryset):
        for key in queryset:
            services.key_restore(key=key)
        self.message_user(request, f"Restored {queryset.count()} keys.")

    @admin.action(permissions=["change"], description="Grant or deduct credits…")
    def grant_credits(self, request, queryset):
        form = CreditForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            refused = self._grant_to_all(
                queryset,
                amount=form.cleaned_data["seconds"],
                reason=form.cleaned_data["reason"],
                actor=request.user.get_username(),
            )
            if refused is None:
                self.message_user(request, f"Credits changed for {queryset.count()} keys.", messages.SUCCESS)
                return None
            form.add_error("seconds", refused)
        return render(
            request,
            "admin/accounts/grant_credits.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "keys": queryset,
                "action": "grant_credits",
                "title": "Grant or deduct credits",
            },
        )

    @staticmethod
    def _grant_to_all(keys, *, amount, reason: str, actor: str) -> str | None:
        """Grant to every key or to none, each by `credits.credits_grant`'s rule: the refusal's
        message, naming its key, or None."""
        with transaction.atomic():
            for key in keys:
                try:
                    credits.credits_grant(key=key, amount=amount, reason=reason, actor=actor)
                except ValueError as exc:
                    transaction.set_rollback(True)  # the keys granted before this one are not either
                    return f"{key.prefix}: {exc} Nothing was changed."
        return None


@admin.register(CreditEntry)
class CreditEntryAdmin(admin.ModelAdmin):
    """The ledger is read-only: changes go through grants, which add rows."""

    list_display = ["created_at", "key", "kind", "seconds", "job_ref", "reason", "actor"]
    list_filter = ["kind", "created_at"]
    search_fields = ["=key__prefix", "=job_ref"]
    list_select_related = ["key"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
