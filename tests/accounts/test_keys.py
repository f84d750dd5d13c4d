from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey, hash_key
from accounts.services import key_revoke
from tests.helpers import Caller


@pytest.mark.django_db
class TestMintingKeys:
    def test_it_mints_a_key_shown_once_and_stored_only_as_a_hash(self, anonymous):
        response = anonymous.post("/v1/keys", {})
        assert response.status_code == 201
        body = response.json()
        assert body["key"].startswith("jpt_") and len(body["key"]) == 44
        assert body["key_prefix"] == body["key"][:12]
        assert "created_at" in body
        stored = ApiKey.objects.get()
        assert stored.hashed_key == hash_key(body["key"])
        assert body["key"] not in str(ApiKey.objects.values().get())

    @pytest.mark.parametrize(("body", "content_type"), [(None, None), ("", "application/json"), ("{}", "application/json"),
                                                        ('{"name": "ignored"}', "application/json")])
    def test_it_takes_no_body_or_a_json_object(self, anonymous, body, content_type):
        kw = {} if body is None else {"data": body, "content_type": content_type}
        assert anonymous.client.post("/v1/keys", **kw).status_code == 201

    @pytest.mark.parametrize(("body", "content_type", "status"), [("{bad", "application/json", 400), ("[]", "application/json", 400),
                                                                  ("hi", "text/plain", 415)])
    def test_a_body_that_is_not_a_json_object_is_refused_and_mints_nothing(self, anonymous, body, content_type, status):
        response = anonymous.client.post("/v1/keys", body, content_type=content_type)
        assert response.status_code == status and response.json()["error"]["code"] == "invalid_request"
        assert not ApiKey.objects.exists()
        for _ in range(5):  # nor did it use up one of the address's keys today
            assert anonymous.post("/v1/keys", {}).status_code == 201

    def test_a_minted_key_works_at_once(self, anonymous):
        raw = anonymous.post("/v1/keys", {}).json()["key"]
        assert Caller(raw).get("/v1/account").status_code == 200

    def test_it_allows_five_keys_per_ip_per_day_then_429(self, anonymous):
        for _ in range(5):
            assert anonymous.post("/v1/keys", {}).status_code == 201
        response = anonymous.post("/v1/keys", {})
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert "5 new keys per IP per day" in response.json()["error"]["message"]
        assert 0 < int(response["Retry-After"]) <= 86400
        # another address is not affected
        assert Caller(None, ip="192.0.2.99").post("/v1/keys", {}).status_code == 201

    def test_an_ipv6_network_counts_as_one_address(self, db):
        """A home gets a /64: its addresses share one allowance, whichever of them asks."""
        for host in range(1, 6):
            assert Caller(None, ip=f"2001:db8:1:2::{host}").post("/v1/keys", {}).status_code == 201
        refused = Caller(None, ip="2001:db8:1:2:ffff:ffff:ffff:ffff").post("/v1/keys", {})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert Caller(None, ip="2001:db8:1:3::1").post("/v1/keys", {}).status_code == 201, "the next /64 is another"

    def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(self, settings):
        spoofer = Caller(None, ip="192.0.2.10")
        for i in range(5):
            response = spoofer.post("/v1/keys", {}, HTTP_X_FORWARDED_FOR=f"10.9.9.{i}")
            assert response.status_code == 201
        assert spoofer.post("/v1/keys", {}, HTTP_X_FORWARDED_FOR="10.9.9.77").status_code == 429

        settings.JPT_TRUSTED_PROXIES = ["192.0.2.10"]
        assert spoofer.post("/v1/keys", {}, HTTP_X_FORWARDED_FOR="10.9.9.77").status_code == 201
        stored = ApiKey.objects.order_by("-id").first()
        assert stored.created_ip == "10.9.9.77"


@pytest.mark.django_db
class TestBearerAuth:
    @pytest.mark.parametrize("header", [None, "jpt_abc", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer jpt_short",
                                        "Bearer jpt_" + "x" * 40])
    def test_it_refuses_missing_malformed_and_unknown_keys(self, header, db):
        caller = Caller(None)
        if header:
            caller.client.credentials(HTTP_AUTHORIZATION=header)
        response = caller.get("/v1/account")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"

    @pytest.mark.postgres  # and with Redis as the shared cache
    def test_a_request_that_read_the_key_just_before_a_revoke_cannot_cache_it_back(self, alice):
        """The revoke lands between a request's database read and its caching of what it read."""
        from accounts.auth import cached_key

        def read_then_revoked_meanwhile():
            key = ApiKey.objects.for_bearer(alice.raw_key)
            key_revoke(key=ApiKey.objects.get(pk=key.pk))
            return key

        assert cached_key(hash_key(alice.raw_key), read_then_revoked_meanwhile) is not None
        assert alice.get("/v1/account").status_code == 401

    @pytest.mark.postgres
    def test_a_restored_key_works_again_at_once(self, alice):
        from accounts.services import key_restore

        key = alice.key
        key_revoke(key=key)
        assert alice.get("/v1/account").status_code == 401
        key_restore(key=key)
        assert alice.get("/v1/account").status_code == 200

    def test_it_refuses_a_revoked_key_at_once(self, alice):
        assert alice.get("/v1/account").status_code == 200  # the key is now in the shared cache
        key_revoke(key=alice.key)
        response = Caller(alice.raw_key).get("/v1/account")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"

    def test_every_keyed_endpoint_needs_a_key(self, anonymous):
        for method, path in [("get", "/v1/account"), ("post", "/v1/transcribe"), ("post", "/v1/translate"),
                             ("get", "/v1/transcriptions/tx_x"), ("post", "/v1/worker/heartbeat"),
                             ("post", "/v1/pool/claim"), ("get", "/v1/pool/jobs/tx_x/audio"),
                             ("post", "/v1/pool/jobs/tx_x/complete"), ("post", "/v1/pool/jobs/tx_x/fail")]:
            response = getattr(anonymous.client, method)(path)
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "unauthorized"

    def test_it_records_last_use(self, alice):
        ApiKey.objects.filter(pk=alice.key.pk).update(last_used_at=timezone.now() - timedelta(hours=1))
        alice.get("/v1/account")
        assert timezone.now() - alice.key.last_used_at < timedelta(seconds=5)
