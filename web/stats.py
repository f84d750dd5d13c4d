"""The public figures behind /status/: one JSON document the page polls, as any monitor can."""

from datetime import datetime, timedelta
from statistics import median
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Min, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from pool.models import Job
from pool.workers import pool_stats

CACHE_NAME = "jpt:status-figures"
CACHE_SECONDS = 5  # every app server shares one computation per 5 s, however many pages poll
WAIT_SAMPLE = 2000  # the median wait is taken over the most recent jobs, not the whole day
HOURS = 24


def status_figures() -> dict[str, Any]:
    figures = cache.get(CACHE_NAME)
    if figures is None:
        figures = compute_status_figures(timezone.now())
        cache.set(CACHE_NAME, figures, CACHE_SECONDS)
    return figures


def compute_status_figures(now: datetime) -> dict[str, Any]:
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first_hour = this_hour - timedelta(hours=HOURS - 1)
    since = now - timedelta(hours=HOURS)
    # created_at bounds the scan with an index; no job waits an hour, so none is missed.
    ended = Job.objects.filter(
        status=Job.Status.COMPLETED, finished_at__gte=since, created_at__gte=since - timedelta(hours=1)
    )
    done = ended.exclude(route=Job.Route.POOL_CHECK)  # checks are pool work, not transcriptions
    pool_work = {
        row["route"]: float(row["seconds"] or 0)
        for row in ended.filter(route__in=[Job.Route.POOL_CREDIT, Job.Route.POOL_CHECK])
        .values("route")
        .annotate(seconds=Sum("duration_seconds"))
        .order_by()
    }
    checking = pool_work.get(Job.Route.POOL_CHECK, 0.0)
    pool_total = checking + pool_work.get(Job.Route.POOL_CREDIT, 0.0)

    totals = done.aggregate(jobs=Count("pk"), audio=Sum("duration_seconds"))
    per_hour = {
        row["hour"]: row
        for row in done.filter(finished_at__gte=first_hour)
        .annotate(hour=TruncHour("finished_at"))
        .values("hour")
        .annotate(jobs=Count("pk"), audio_seconds=Sum("duration_seconds"))
        .order_by()
    }
    hours = []
    for i in range(HOURS):
        start = first_hour + timedelta(hours=i)
        row = per_hour.get(start)
        jobs, audio_seconds = (row["jobs"], row["audio_seconds"]) if row else (0, None)
        hours.append(
            {
                "hour": start.isoformat().replace("+00:00", "Z"),
                "jobs_done": jobs,
                "audio_minutes": round(float(audio_seconds or 0) / 60, 2),
            }
        )

    waits = [
        (started - created).total_seconds()
        for created, started in done.annotate(started=Min("attempt_log__started_at"))
        .order_by("-finished_at")
        .values_list("created_at", "started")[:WAIT_SAMPLE]
        if started is not None
    ]
    return {
        "generated_at": now.isoformat().replace("+00:00", "Z"),
        "pool": pool_stats(),
        "last_24h": {
            "jobs_done": totals["jobs"],
            "audio_hours": round(float(totals["audio"] or 0) / 3600, 3),
            "median_wait_seconds": round(median(waits), 2) if waits else None,
            # Of the seconds volunteers transcribed for others, the share that checked others' results.
            "checks_share_of_pool_work": round(checking / pool_total, 3) if pool_total else None,
        },
        "hours": hours,
    }
