"""Results you can trust from strangers' workers: adaptive replication, reputation, strikes.

A pool result (a `pool_credit` job done by a worker of another key) is checked by running the
same clip again on a worker of a different key (a check copy: a job of route `pool_check`):

- a *new* key's result is held back (status `checking`) until another key's agrees; its check
  copy is queued the moment the new key claims the job, so both run at once;
- a *trusted* key's result is delivered at once, and spot-checked afterwards at a rate that falls
  as its record grows (max(JPT_SPOT_CHECK_MIN_RATE, 1/consecutive agreements));
- an *implausible* result (a text answered faster than any engine could, a clip the worker never
  received, a text too long for the clip) is a strike, takes no part in the vote, and is held
  back like a new key's; an empty transcript of a clip with sound is held back too, and is a
  strike only if another worker heard words. Empty ones of such a clip decide nothing unless a
  trusted key's or the demo's is among them (junk workers sending nothing would otherwise
  confirm each other, as `bench/trust.py` showed).

Two results agree when `pool.agreement.agree` says so. When the first two disagree a third run
decides, on a trusted key's worker or the server's demo worker: the largest group of agreeing
results wins (a lone trusted decider wins when nobody agrees). A decider no trusted key or the demo
can take within JPT_CHECK_DECIDER_WAIT_SECONDS (all of them ran the clip, or none is online) does
not hold the caller for ever: an independent result already in (the demo's, say) decides; without
one, the run opens to any other key. Once a job is decided its other checks end unpaid. Each result in the winning group
has its pending seconds confirmed and counts an agreement; each outvoted one is voided and
struck. A key is trusted after KeyTrust.TRUSTED_AFTER agreements in a row; a strike makes it new
again; three strikes within a day quarantine it (its workers take only their own key's jobs) until
an operator clears it, and the strikes behind it. A delivered result outvoted later is replaced
(`corrected`) and its caller refunded. Callers pay once; each agreeing worker earns, the extra coming from the house.

`pool_self` jobs and the server demo are never checked; nor is a `pool_credit` job its owner's own
worker took after all (it becomes `pool_self`: free), and no key checks its own jobs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, F, QuerySet
from django.utils import timezone

from accounts import credits
from jptranscribe.sql import row_params, run
from pool import leases, policy, wakeup
from pool import statements as sql
from pool.agreement import agree, cer, normalise
from pool.models import Job, JobAttempt, JobAudio, JobResult, KeyTrust, Strike, Worker

Route, Status, Verdict = Job.Route, Job.Status, JobResult.Verdict
CHECKED_ROUTES = (Route.POOL_CREDIT, Route.POOL_CHECK)
OPEN = (Status.QUEUED, Status.LEASED)


# --- Reputation ---------------------------------------------------------------------------------


def trust_of(key_id: int) -> KeyTrust:
    return KeyTrust.objects.get_or_create(key_id=key_id)[0]


def _trust_update(key_id: int, **fields: Any) -> None:
    """Change a key's record in one UPDATE (made first if the key has none yet)."""
    if not KeyTrust.objects.filter(key_id=key_id).update(**fields):
        trust_of(key_id)
        KeyTrust.objects.filter(key_id=key_id).update(**fields)


def trust_seen(key_id: int, *, consecutive_agreements: int, quarantined: bool) -> KeyTrust:
    """A key's record as a claim or completion statement read it (`pool.statements._TRUST_COLUMNS`):
    enough to tell its level and spot-check rate; changes go through `_trust_update`."""
    return KeyTrust(
        key_id=key_id,
        consecutive_agreements=consecutive_agreements or 0,
        quarantined_at=timezone.now() if quarantined else None,
    )


def is_independent(worker: Worker, trust: KeyTrust) -> bool:
    """The server's demo worker, or a trusted key's (`trust`: its record): its result may stand as a check alone."""
    return bool(worker.key.is_server) or trust.level == KeyTrust.Level.TRUSTED


def spot_check_rate(trust: KeyTrust) -> float:
    return max(settings.JPT_SPOT_CHECK_MIN_RATE, 1 / max(1, trust.consecutive_agreements))


def standing_strikes(key_id: int) -> QuerySet[Strike]:
    """The key's strikes that count towards a quarantine: those of the last 24 h no operator cleared."""
    day_ago = timezone.now() - timedelta(hours=24)
    return Strike.objects.filter(key_id=key_id, created_at__gte=day_ago, cleared_at__isnull=True)


def strike(*, key_id: int, job: Job | None, reason: str) -> None:
    """Record a strike: the key is new again, and three standing within a day quarantine it."""
    Strike.objects.create(key_id=key_id, job=job, reason=reason[:300])
    _trust_update(key_id, strikes=F("strikes") + 1, consecutive_agreements=0)
    if standing_strikes(key_id).count() >= settings.JPT_QUARANTINE_STRIKES:
        KeyTrust.objects.filter(key_id=key_id, quarantined_at__isnull=True).update(quarantined_at=timezone.now())


def _strikes_clear(key_id: int) -> None:
    """An operator's word outweighs the strikes so far: they stay on the key's record, and no longer
    count towards a quarantine (else the next strike would put the key straight back)."""
    Strike.objects.filter(key_id=key_id, cleared_at__isnull=True).update(cleared_at=timezone.now())


def quarantine_clear(*, key_id: int) -> bool:
    """An operator's decision: a quarantined key's workers take others' jobs again, as a new key's,
    and the strikes that quarantined it are cleared. A key that is not quarantined is left as it is
    (clearing is no way to demote a trusted key). Returns whether there was a quarantine."""
    with transaction.atomic():
        lifted = KeyTrust.objects.filter(key_id=key_id, quarantined_at__isnull=False).update(
            quarantined_at=None, consecutive_agreements=0
        )
        if lifted:
            _strikes_clear(key_id)
    return bool(lifted)


def trust_grant(*, key_id: int) -> None:
    """An operator vouches for a key: trusted at once (its results are spot-checked, not held), out
    of any quarantine, its strikes so far cleared."""
    with transaction.atomic():
        _trust_update(key_id, consecutive_agreements=KeyTrust.TRUSTED_AFTER, quarantined_at=None)
        _strikes_clear(key_id)


# --- Check copies -------------------------------------------------------------------------------


def _open_checks(original_id: str) -> QuerySet[Job]:
    return Job.objects.filter(checks_id=original_id, status__in=OPEN)


def checks_cancel(job_ids: list[str], *, why: str) -> None:
    """The checks still queued or running of these jobs end with them: their workers lose the
    lease and earn nothing. Call in a transaction."""
    for copy in Job.objects.select_for_update().filter(checks_id__in=job_ids, status__in=OPEN):
        if copy.status == Status.LEASED:
            leases.end_attempt(copy, JobAttempt.Outcome.ABANDONED, f"the checked job was {why}")
        leases.job_finish_failed(
            copy, f"The job it checked was {why}.", status=Status.CANCELLED, code=leases.CANCELLED_CODE
        )


def job_cancelled(original_id: str) -> None:
    """A job was cancelled and its caller refunded: its checks end, and no run of it is paid, even
    one already handed in and waiting for its check (the seconds would come from nobody)."""
    _checks_end_unpaid(original_id, why="cancelled")
    credits.credits_void(job_ref=original_id, reason=f"{original_id} was cancelled: its caller was refunded")


def _checks_end_unpaid(original_id: str, *, why: str) -> None:
    """The job's caller pays nothing after all: its checks end, and those already run are not paid."""
    checks_cancel([original_id], why=why)
    for copy_id in Job.objects.filter(checks_id=original_id).values_list("pk", flat=True):
        credits.credits_void(
            job_ref=copy_id, reason=f"the job it checked ({original_id}) was {why}: nobody paid for it"
        )


def check_copy_add(original: Job, *, by_trusted: bool) -> Job | None:
    """Queue one more run of the original's clip, for a worker of a key that has not run it.
    None when its audio is gone (nothing can be checked any more)."""
    copy = Job.objects.create(
        key_id=original.key_id,
        route=Route.POOL_CHECK,
        route_reason="a check of a pool result",
        checks=original,
        check_by_trusted=by_trusted,
        language=original.language,
        options=original.options,
        duration_seconds=original.duration_seconds,
        voiced_seconds=original.voiced_seconds,
        audio_format=original.audio_format,
    )
    copied = run(sql.COPY_AUDIO, {"copy_id": copy.id, "original_id": original.id}).rowcount
    if not copied:
        copy.delete()
        return None
    for channel in wakeup.check_channels():
        wakeup.announce(channel)
    return copy


def job_claimed(job: Job, worker: Worker, trust: KeyTrust) -> None:
    """A new key took a pool job: its check copy runs beside it, so the caller waits about one job's time."""
    if job.route != Route.POOL_CREDIT or is_independent(worker, trust) or worker.key_id == job.key_id:
        return
    with transaction.atomic():
        # One check at a time: one still to run, or one run already in (from an earlier claim whose
        # lease was lost) that this run's result will be weighed against.
        checked = JobResult.objects.filter(job_id=job.id, verdict=Verdict.OPEN).exclude(run_id=job.id)
        if not _open_checks(job.id).exists() and not checked.exists():
            check_copy_add(job, by_trusted=False)


# --- A result arrives ---------------------------------------------------------------------------


@dataclass
class Received:
    """What the completion's caller needs: the seconds the worker's owner earns (pending)."""

    earned: float


def implausible(job: Job, attempt: JobAttempt | None, *, now: datetime | None = None) -> str:
    """Why the result cannot be an honest transcript of this clip ("" when it can)."""
    now = now or timezone.now()
    if attempt is not None:
        took = (now - attempt.started_at).total_seconds()
        # An engine's time goes on the clip's speech: it skips silence, and Whisper's voice-activity
        # filter skips music and noise too, so a clip with sound but no speech takes no time either.
        # An empty transcript is judged by the check it goes to instead (struck if that hears words).
        fastest = float(job.voiced_seconds) * settings.JPT_MIN_SECONDS_PER_AUDIO_SECOND
        if took < fastest and normalise(job.text):
            return (
                f"answered {took:.2f} s after the claim for a clip with {float(job.voiced_seconds):g} s of sound:"
                " faster than any engine"
            )
        if not attempt.audio_inline and not attempt.audio_fetched:
            return "completed a clip it never fetched"
    return ""


def result_in(job: Job, worker: Worker, *, attempt: JobAttempt | None, trust: KeyTrust) -> Received:
    """A pool or check run was completed (its row holds the text; `attempt` and `trust` are what
    the completion read with it). Record it as a vote, hold or deliver the original, and start
    whatever check it needs. In the completion's transaction.

    A trusted key's result delivered unchecked is no vote: its row holds the text, and it is kept
    as a result (`JobResult`) only when a check will weigh it."""
    if job.route == Route.POOL_CREDIT and worker.key_id == job.key_id:
        return _own_run(job)
    original_id = job.checks_id or job.id
    independent = is_independent(worker, trust)
    why = implausible(job, attempt)
    result = JobResult(
        job_id=original_id,
        run=job,
        worker=worker,
        key_id=worker.key_id,
        independent=independent,
        text=job.text,
        segments=job.segments,
        model=job.model,
        implausible=why,
    )
    # An implausible result earns nothing, not even pending seconds.
    earned = (
        0.0
        if why
        else policy.credited_seconds(
            duration=job.duration_seconds,
            owner_key_id=job.key_id,
            worker_key_id=worker.key_id,
            worker_is_server=worker.key.is_server,
        )
    )
    if earned:
        credits.credits_earn_pending(key_id=worker.key_id, amount=job.duration_seconds, job_ref=job.id)
    if why:
        strike(key_id=worker.key_id, job=job, reason=why)
    if job.route == Route.POOL_CHECK:
        run(sql.RECORD_RESULT, row_params(result))
        evaluate(original_id)
        return Received(earned)
    empty_of_sound = not normalise(job.text) and job.voiced_seconds >= settings.JPT_VOICED_SECONDS_FOR_SPEECH
    if not independent or why or empty_of_sound:
        run(sql.RECORD_RESULT, row_params(result))
        Job.objects.filter(pk=job.pk).update(status=Status.CHECKING, text="", segments=[], finished_at=None)
        job.status, job.text, job.segments, job.finished_at = Status.CHECKING, "", [], None
        evaluate(original_id)
        return Received(earned)
    # A trusted key's plausible result: delivered now, perhaps checked afterwards.
    credits.credits_settle(job_ref=job.id)
    wakeup.announce(wakeup.job_done_channel(job.id))
    if random.random() < spot_check_rate(trust):
        run(sql.RECORD_RESULT, row_params(result))
        check_copy_add(job, by_trusted=False)  # the audio stays until the check has decided (if it is still here)
        return Received(earned)
    if not run(sql.RELEASE_AUDIO, {"job_id": job.id}).rowcount:
        # Kept: a check still runs from when the job ran under a new key, and will weigh this too.
        run(sql.RECORD_RESULT, row_params(result))
    return Received(earned)


def _own_run(job: Job) -> Received:
    """The owner's own worker ran its `pool_credit` job (no worker of the key was online when it
    was sent): as if it had been `pool_self` from the start. The held seconds go back, nothing is
    earned or checked, and the caller has the text at once."""
    Job.objects.filter(pk=job.pk).update(route=Route.POOL_SELF, route_reason="run by a worker of your own key")
    job.route = Route.POOL_SELF
    credits.credits_refund(job_ref=job.id, reason="run by a worker of your own key: free")
    _checks_end_unpaid(job.id, why="run by its owner's own worker")
    wakeup.announce(wakeup.job_done_channel(job.id))
    run(sql.RELEASE_AUDIO, {"job_id": job.id})
    return Received(0.0)


def _release_audio(original_id: str) -> None:
    """The original's audio goes once its transcription is final and no check needs it (one DELETE)."""
    final = Job.objects.filter(pk=original_id).exclude(status__in=(*OPEN, Status.CHECKING))
    JobAudio.objects.filter(Exists(final), ~Exists(_open_checks(original_id)), job_id=original_id).delete()


# --- Deciding -----------------------------------------------------------------------------------


def _unheard(group: list[JobResult]) -> bool:
    """Empty transcripts of a clip with sound, none of them a trusted key's or the demo's: two
    workers that sent nothing agree without having listened, so such a group never wins."""
    first = group[0]
    sound = first.run.voiced_seconds >= settings.JPT_VOICED_SECONDS_FOR_SPEECH
    return sound and not normalise(first.text) and not any(r.independent for r in group)


def decide(results: list[JobResult], *, decider_overdue: bool = False) -> tuple[JobResult, list[JobResult]] | None:
    """The winning result and the results that agree with it, or None while undecided: the
    largest group of agreeing plausible results (two or more; empty ones of a clip with sound
    only with a trusted key's among them), ties to one holding a trusted key's result, then to
    the earliest; else a trusted check run's result that nothing plausible contradicts, or that
    was run to decide, or that is in when the run meant to decide found no taker in time."""
    voters = [r for r in results if not r.implausible]
    groups = [[s for s in voters if s is r or agree(r.text, s.text)] for r in voters]
    groups = [g for g in groups if not _unheard(g)]
    best = max(groups, key=lambda g: (len(g), any(r.independent for r in g)), default=[])
    if len(best) >= 2:
        return best[0], best
    # A held original never stands alone: only a check run by a trusted key (or the demo) may.
    deciders = [
        r
        for r in voters
        if r.independent and r.run.checks_id and (len(voters) == 1 or r.run.check_by_trusted or decider_overdue)
    ]
    if deciders:
        return deciders[-1], [deciders[-1]]
    return None


def evaluate(original_id: str, *, decider_overdue: bool = False) -> None:
    """Look at the votes for a pool job, and act: deliver, correct, or run it once more."""
    original = Job.objects.select_for_update().filter(pk=original_id).first()
    if original is None or original.status not in (Status.CHECKING, Status.COMPLETED):
        return
    results = list(JobResult.objects.filter(job=original).select_related("run").order_by("created_at", "id"))
    if original.status == Status.COMPLETED and all(r.verdict != Verdict.OPEN for r in results):
        _release_audio(original.id)
        return
    decided = decide(results, decider_overdue=decider_overdue)
    if decided is None:
        _run_again(original, results)
        return
    winner, group = decided
    delivered = next((r for r in results if r.run_id == original.id), None)
    if original.status == Status.COMPLETED and delivered is not None and delivered in group:
        winner = delivered
    _settle_votes(original, results, winner, group)
    if original.status == Status.CHECKING:
        Job.objects.filter(pk=original.pk).update(
            status=Status.COMPLETED,
            text=winner.text,
            segments=winner.segments,
            model=winner.model,
            finished_at=timezone.now(),
            verification=Job.Verification.CHECKED if len(group) >= 2 else Job.Verification.UNCHECKED,
            agreeing_workers=len(group),
        )
        credits.credits_settle(job_ref=original.id)
    elif winner is delivered:
        Job.objects.filter(pk=original.pk).update(verification=Job.Verification.CHECKED, agreeing_workers=len(group))
    else:  # a spot check outvoted what the caller got: the text is replaced and the clip refunded
        Job.objects.filter(pk=original.pk).update(
            text=winner.text,
            segments=winner.segments,
            model=winner.model,
            translation=None,
            verification=Job.Verification.CORRECTED,
            agreeing_workers=len(group),
        )
        credits.credits_refund_charged(job_ref=original.id, reason="the result was outvoted by a check: corrected")
    # Decided: any other run of the clip still queued or running would be paid for nothing.
    checks_cancel([original.id], why="decided")
    wakeup.announce(wakeup.job_done_channel(original.id))
    _release_audio(original.id)


def _settle_votes(original: Job, results: list[JobResult], winner: JobResult, group: list[JobResult]) -> None:
    """Confirm the winners' pending seconds and count their agreement; void and strike the rest.

    In key order: each key's balance and record rows are locked as they change, and two
    evaluations crossing (each confirming the other's worker's key) must take them in one order."""
    for result in sorted(results, key=lambda r: (r.key_id, r.pk)):
        if result.verdict != Verdict.OPEN:
            continue
        agreed = result in group
        result.verdict = Verdict.AGREED if agreed else Verdict.OUTVOTED
        result.cer = round(cer(winner.text, result.text), 4)
        JobResult.objects.filter(pk=result.pk).update(verdict=result.verdict, cer=result.cer)
        if agreed:
            credits.credits_confirm(job_ref=result.run_id)
            if len(group) >= 2:  # agreed with another key's result
                _trust_update(
                    result.key_id,
                    checks=F("checks") + 1,
                    agreements=F("agreements") + 1,
                    consecutive_agreements=F("consecutive_agreements") + 1,
                )
        else:
            credits.credits_void(job_ref=result.run_id, reason=f"outvoted by a check of {original.id}")
            _trust_update(result.key_id, checks=F("checks") + 1, consecutive_agreements=0)
            # The odd one out, at odds with every text that won, is struck; one that agreed with
            # some of them (honest engines differ more on short noisy clips) only earns nothing.
            # An implausible one was struck when it came in.
            odd_one_out = not any(agree(result.text, other.text) for other in group)
            if odd_one_out and not result.implausible:
                strike(key_id=result.key_id, job=original, reason=f"outvoted (character error rate {result.cer:.2f})")


def _run_again(original: Job, results: list[JobResult]) -> None:
    """Undecided: one more run, meant for a trusted key (or the demo) once two disagree. After
    JPT_CHECK_MAX_RUNS runs a held transcription fails (and refunds) rather than guess."""
    if _open_checks(original.id).exists():
        return
    # Runs tried, not only those that answered: a run meant for a trusted key that none can take
    # runs out of queue time, and must not be queued again for ever.
    runs = 1 + Job.objects.filter(checks_id=original.id).count()
    if runs >= settings.JPT_CHECK_MAX_RUNS or check_copy_add(original, by_trusted=len(results) >= 2) is None:
        if original.status == Status.CHECKING:
            leases.job_finish_failed(
                original, "The workers' transcripts of this clip did not agree; you were not charged. Please retry."
            )
        _release_audio(original.id)


def checks_maintenance() -> None:
    """Held transcriptions whose checks all ended without deciding (a check copy failed or ran
    out of time) get another run, or fail; earnings past their holding period become spendable
    (once a minute at most). A pool maintenance turn calls this."""
    if cache.add("jpt:credits-held", 1, timeout=60):
        credits.credits_confirm_held(older_than=timezone.now() - timedelta(hours=settings.JPT_CREDITS_HOLD_HOURS))
    stalled = (
        Job.objects.filter(status=Status.CHECKING)
        .exclude(check_copies__status__in=OPEN)
        .values_list("pk", flat=True)[:100]
    )
    for original_id in list(stalled):
        with transaction.atomic():
            evaluate(original_id)
    _deciders_overdue()


def _deciders_overdue() -> None:
    """Runs meant for a trusted key (or the demo) that none took in JPT_CHECK_DECIDER_WAIT_SECONDS:
    an independent result already in decides (junk keys must not outvote the demo by waiting); with
    none, the run opens to any key that has not run the clip."""
    waited_since = timezone.now() - timedelta(seconds=settings.JPT_CHECK_DECIDER_WAIT_SECONDS)
    overdue = Job.objects.filter(
        route=Route.POOL_CHECK, status=Status.QUEUED, check_by_trusted=True, queued_at__lt=waited_since
    ).values_list("pk", "checks_id")[:100]
    for copy_id, original_id in list(overdue):
        with transaction.atomic():
            independent_in = JobResult.objects.filter(
                job_id=original_id, verdict=Verdict.OPEN, independent=True, implausible="", run__checks__isnull=False
            )
            if independent_in.exists():
                evaluate(original_id, decider_overdue=True)  # decided: the run is cancelled
            if Job.objects.filter(pk=copy_id, status=Status.QUEUED).update(check_by_trusted=False):
                for channel in wakeup.check_channels():
                    wakeup.announce(channel)
