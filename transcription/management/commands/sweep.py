from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts import idempotency
from pool import leases
from pool.models import Job, JobAudio
from transcription.routing import reroute_if_stranded
from transcription.services import transcriptions_erase


class Command(BaseCommand):
    help = (
        "Expire leases and stale jobs, re-route stranded ones, delete orphaned audio, erase results past "
        "their retention, delete old jobs, expired browser sessions and Idempotency-Keys past their keeping time."
    )

    def handle(self, *args, **options):
        expired_leases = leases.jobs_expire_leases()
        expired_queued = leases.jobs_expire_queued()
        stranded = 0
        for job in Job.objects.filter(route=Job.Route.POOL_SELF, status=Job.Status.QUEUED).select_related("key"):
            after = reroute_if_stranded(job)
            if after.route != job.route or after.is_finished:
                stranded += 1
        # A finished pool job's audio stays while a check of it runs (another may be needed to decide).
        open_checks = Job.objects.filter(
            status__in=[Job.Status.QUEUED, Job.Status.LEASED], checks_id__isnull=False
        ).values("checks_id")
        orphans, _ = JobAudio.objects.filter(job__status__in=Job.FINISHED).exclude(job_id__in=open_checks).delete()
        now = timezone.now()
        erased = transcriptions_erase(
            Job.objects.filter(finished_at__lt=now - timedelta(days=settings.JPT_RESULT_RETENTION_DAYS))
        )
        cutoff = now - timedelta(days=settings.JPT_FINISHED_JOB_RETENTION_DAYS)
        old, _ = Job.objects.filter(status__in=Job.FINISHED, finished_at__lt=cutoff).delete()
        # Web visitors get a session (the jobs their browser started): they pile up otherwise.
        sessions, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
        keys = idempotency.forget_expired()
        self.stdout.write(
            f"leases expired: {expired_leases}, stale jobs failed: {expired_queued}, stranded re-routed: {stranded}, "
            f"orphaned audio deleted: {orphans}, results erased: {erased}, old jobs deleted: {old}, "
            f"expired sessions deleted: {sessions}, idempotency keys forgotten: {keys}"
        )
