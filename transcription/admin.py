from django.contrib import admin

from pool.admin import JobAdmin
from pool.models import Job
from transcription import services

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
