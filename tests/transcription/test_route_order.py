"""Which routes a clip may take, in the spec's order, before any demo or credit is taken."""
from pool.models import Job
from transcription.routing import routes_to_try

SELF, DEMO, CREDIT = Job.Route.POOL_SELF, Job.Route.SERVER_DEMO, Job.Route.POOL_CREDIT


def order(**facts):
    return routes_to_try(**{"own_online": False, "demo_online": True, "duration": 10.0, "is_server": False, **facts})


def test_your_own_worker_online_wins_outright():
    assert order(own_online=True) == (SELF,)


def test_without_your_worker_a_short_clip_tries_the_demo_then_credits():
    assert order() == (DEMO, CREDIT)


def test_a_clip_over_the_demo_limit_goes_to_credits_only(settings):
    settings.JPT_DEMO_MAX_SECONDS = 30
    assert order(duration=30.0) == (DEMO, CREDIT)
    assert order(duration=30.001) == (CREDIT,)


def test_the_demo_is_not_offered_while_it_is_offline():
    assert order(demo_online=False) == (CREDIT,)


def test_the_servers_own_key_never_takes_the_demo():
    assert order(is_server=True) == (CREDIT,)


def test_a_job_rerouted_after_its_worker_left_does_not_go_back_to_self():
    assert order(own_online=True, allow_self=False) == (DEMO, CREDIT)
