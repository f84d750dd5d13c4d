"""Settings, read from the environment. SQLite by default, PostgreSQL by DATABASE_URL."""

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("JPT_VAR_DIR", BASE_DIR / "var"))


def envbool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value in ("True", "true", "1"):
        return True
    if value in ("False", "false", "0"):
        return False
    raise ValueError(f"{name} must be True or False, not {value!r}")


def envint(name, default):
    return int(os.environ.get(name) or default)


def envfloat(name, default):
    return float(os.environ.get(name) or default)


def envlist(name, default=""):
    return [item.strip() for item in (os.environ.get(name) or default).split(",") if item.strip()]


def _secret_key():
    """A real secret per installation: from the environment, or made once under var/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
# Behind a proxy that terminates TLS: believe its X-Forwarded-Proto (so the browser proxy's
# CSRF check compares https origins) and send cookies over HTTPS only.
JPT_BEHIND_HTTPS_PROXY = envbool("JPT_BEHIND_HTTPS_PROXY", False)
if JPT_BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "accounts",
    "pool",
    "transcription",
    "translation",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jptranscribe.urls"
WSGI_APPLICATION = "jptranscribe.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database -------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL)
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # A connection pool, not persistent per-thread connections: long-polls
        # hand their connection back while they sleep, so hundreds of waiting
        # requests need only a handful of PostgreSQL connections.
        _db["CONN_MAX_AGE"] = 0
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": envint("JPT_DB_POOL_MIN", 2),
            "max_size": envint("JPT_DB_POOL_MAX", 20),
            "timeout": envint("JPT_DB_POOL_TIMEOUT", 20),
        }
        # Parameters travel apart from the SQL (binary audio is not escaped into text), and
        # psycopg prepares a statement after a few runs on a connection, so PostgreSQL stops
        # parsing and planning the pool's hot queries on every call.
        # (Behind PgBouncer in transaction mode, set JPT_DB_PREPARE_THRESHOLD=off.)
        _db["OPTIONS"]["server_side_binding"] = True
        _prepare = os.environ.get("JPT_DB_PREPARE_THRESHOLD", "5")
        _db["OPTIONS"]["prepare_threshold"] = None if _prepare in ("off", "") else int(_prepare)
        _db["TEST"] = {"NAME": os.environ.get("JPT_TEST_DB_NAME", "test_jptranscribe")}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("JPT_SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            # IMMEDIATE takes the write lock at BEGIN, so two claimers can never
            # both read the same queued row before one of them updates it.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # A file, not shared-cache memory, so concurrency tests meet SQLite's real locking.
        "TEST": {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")},
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: rate-limit counters must be shared by every process and node ---
CACHE_URL = os.environ.get("JPT_CACHE_URL", "")
if CACHE_URL:
    # One Redis may serve several deployments (or test servers): each keeps its keys apart under
    # its own prefix, since counts are kept by key id, which every database numbers from 1.
    CACHES = {
        "default": {
            "BACKEND": "jptranscribe.cache.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": os.environ.get("JPT_CACHE_KEY_PREFIX", ""),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "jptranscribe.cache.DatabaseCache",
            "LOCATION": "jpt_cache",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The app servers serve the few static files themselves, straight from the apps, so no
# collectstatic step is needed; set STATIC_ROOT only to collect them for a CDN or proxy.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True
# The browser proxy answers a failed CSRF check in the API's error envelope.
CSRF_FAILURE_VIEW = "web.proxy.csrf_failure"

# Uploads over this many bytes go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.auth.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "jptranscribe.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "jptranscribe.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_SCHEMA_CLASS": "jptranscribe.autoschema.AutoSchema",
}

# The API's version: /v1/health and openapi.yaml say it. (worker_client.client.VERSION is the
# standalone worker's own version, sent in its heartbeats.)
JPT_VERSION = "1.3.0"

SPECTACULAR_SETTINGS = {
    "TITLE": "JPTranscribe API",
    "DESCRIPTION": "Send Japanese audio, get Japanese text and an English translation back. "
    'Every error is {"error": {"code", "message", "type", "param"}}, a superset of the envelope of OpenAI\'s API.',
    "VERSION": JPT_VERSION,
    "SERVERS": [{"url": "https://api.jptranscribe.com"}],
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/v1",
    # /api is the same API for the web pages; the contract is /v1.
    "PREPROCESSING_HOOKS": ["jptranscribe.schema.public_api_only"],
    # `language` (transcribe) and `source` (translate) take the same one value.
    # A transcription and an erased one are both "completed": one enum keeps its first name.
    "ENUM_NAME_OVERRIDES": {"JapaneseEnum": ["ja"], "TranscriptionStatusEnum": ["completed"]},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# --- JPTranscribe ------------------------------------------------------------
JPT_PUBLIC_BASE_URL = os.environ.get("JPT_PUBLIC_BASE_URL", "")

JPT_MAX_UPLOAD_BYTES = envint("JPT_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
JPT_MAX_CLIP_SECONDS = envfloat("JPT_MAX_CLIP_SECONDS", 90)
JPT_DEMO_MAX_SECONDS = envfloat("JPT_DEMO_MAX_SECONDS", 30)
JPT_DEMOS_PER_IP_PER_DAY = envint("JPT_DEMOS_PER_IP_PER_DAY", 3)
JPT_KEYS_PER_IP_PER_DAY = envint("JPT_KEYS_PER_IP_PER_DAY", 5)
JPT_RATE_USER = os.environ.get("JPT_RATE_USER", "30/m")
JPT_RATE_WORKER = os.environ.get("JPT_RATE_WORKER", "1200/m")
# Requests with a missing, malformed, unknown or revoked key, per address (IPv6: per /64).
JPT_RATE_AUTH_FAILURES = os.environ.get("JPT_RATE_AUTH_FAILURES", "30/m")
# Only requests whose socket peer is one of these may set X-Forwarded-For.
JPT_TRUSTED_PROXIES = envlist("JPT_TRUSTED_PROXIES")

JPT_TRANSCRIBE_WAIT_SECONDS = envfloat("JPT_TRANSCRIBE_WAIT_SECONDS", 120)
# The longest a claim waits for a job (the worker client asks 50 s; a claim that gives no wait, 25).
JPT_CLAIM_WAIT_MAX_SECONDS = envfloat("JPT_CLAIM_WAIT_MAX_SECONDS", 55)
# A claim that asks gets audio up to this size in its answer, saving the worker a round trip.
JPT_CLAIM_INLINE_AUDIO_BYTES = envint("JPT_CLAIM_INLINE_AUDIO_BYTES", 1024 * 1024)
JPT_WORKER_ONLINE_SECONDS = envfloat("JPT_WORKER_ONLINE_SECONDS", 90)
JPT_WORKER_TTL_SECONDS = envfloat("JPT_WORKER_TTL_SECONDS", 900)
JPT_HEARTBEAT_INTERVAL_SECONDS = envfloat("JPT_HEARTBEAT_INTERVAL_SECONDS", 20)
JPT_LEASE_SECONDS = envfloat("JPT_LEASE_SECONDS", 120)
# However often a worker renews it, a lease ends this long after the claim (a slow CPU runs a
# 90 s clip through Whisper small in a few minutes); the job goes back to the queue.
JPT_LEASE_MAX_SECONDS = envfloat("JPT_LEASE_MAX_SECONDS", 1800)
# A worker declares how many jobs it runs at once (max_jobs in its heartbeat), up to this.
JPT_WORKER_MAX_JOBS = envint("JPT_WORKER_MAX_JOBS", 4)
# Long-polled claims one key may have open at once, across all its workers (each holds a
# server thread while it waits).
JPT_CLAIMS_WAITING_PER_KEY = envint("JPT_CLAIMS_WAITING_PER_KEY", 16)
# Transcribe calls that wait for their result at once, per key and per address (IPv6: per
# /64); beyond these a call is answered 202 at once with its status_url instead of waiting.
JPT_TRANSCRIBE_WAITING_PER_KEY = envint("JPT_TRANSCRIBE_WAITING_PER_KEY", 8)
JPT_TRANSCRIBE_WAITING_PER_ADDRESS = envint("JPT_TRANSCRIBE_WAITING_PER_ADDRESS", 16)
JPT_MAX_ATTEMPTS = envint("JPT_MAX_ATTEMPTS", 3)
JPT_MAINTENANCE_INTERVAL_SECONDS = envfloat("JPT_MAINTENANCE_INTERVAL_SECONDS", 1)
JPT_QUEUE_TIMEOUT_SECONDS = envfloat("JPT_QUEUE_TIMEOUT_SECONDS", 3600)
# Requests running their sync code at once in each app server process (the rest wait their turn,
# holding no thread slot and no database connection); a request waiting for a wake-up holds none.
JPT_WEB_THREADS = envint("JPT_WEB_THREADS", 16)
# Of those, how many may run the calls of volunteers' claims at once: a burst of thousands of them
# claiming again queues on the event loop, not ahead of quick requests.
JPT_WAITING_LANE_THREADS = envint("JPT_WAITING_LANE_THREADS", 4)
# Safety net for missed wake-ups; PostgreSQL LISTEN/NOTIFY does the real work.
JPT_WAKEUP_POLL_SECONDS = envfloat("JPT_WAKEUP_POLL_SECONDS", 5 if DATABASE_URL else 1)
# `sweep` erases a finished transcription's text, segments, translation and the caller's prompt
# this long after it ended; its row (what billing and the ledger need) stays until the next.
JPT_RESULT_RETENTION_DAYS = envint("JPT_RESULT_RETENTION_DAYS", 30)
JPT_FINISHED_JOB_RETENTION_DAYS = envint("JPT_FINISHED_JOB_RETENTION_DAYS", 400)
# Checking strangers' results (pool.verification).
# A trusted key's delivered results are spot-checked at max(this, 1/its agreements in a row).
JPT_SPOT_CHECK_MIN_RATE = envfloat("JPT_SPOT_CHECK_MIN_RATE", 0.05)
# Strikes within 24 h that quarantine a key (its workers then take only their own key's jobs).
JPT_QUARANTINE_STRIKES = envint("JPT_QUARANTINE_STRIKES", 3)
# A result sooner after its claim than this many seconds per second of audio is implausible.
JPT_MIN_SECONDS_PER_AUDIO_SECOND = envfloat("JPT_MIN_SECONDS_PER_AUDIO_SECOND", 0.01)
# An empty transcript of a clip with at least this much sound is held for a second worker.
JPT_VOICED_SECONDS_FOR_SPEECH = envfloat("JPT_VOICED_SECONDS_FOR_SPEECH", 1.0)
# Runs of one clip (the original and its checks) before a held transcription fails undecided.
JPT_CHECK_MAX_RUNS = envint("JPT_CHECK_MAX_RUNS", 4)
# A check of a new key's result is for trusted keys' workers (and the demo's) this long, then for any other key's.
JPT_CHECKS_OPEN_SECONDS = envfloat("JPT_CHECKS_OPEN_SECONDS", 30)
# A run meant to decide between two results that no trusted key or the demo takes in this long:
# an independent result already in decides, else any other key may take it.
JPT_CHECK_DECIDER_WAIT_SECONDS = envfloat("JPT_CHECK_DECIDER_WAIT_SECONDS", 120)
# Earned seconds become spendable after this long without a failed check (or at once, when confirmed).
JPT_CREDITS_HOLD_HOURS = envfloat("JPT_CREDITS_HOLD_HOURS", 24)
# How long a request's Idempotency-Key is remembered (a retry within it gets the first answer).
JPT_IDEMPOTENCY_KEEP_HOURS = envfloat("JPT_IDEMPOTENCY_KEEP_HOURS", 24)

JPT_URL_FETCH_ALLOW_HTTP = envbool("JPT_URL_FETCH_ALLOW_HTTP", False)
# For tests only: addresses a URL fetch may reach despite being private.
JPT_URL_FETCH_ALLOWED_NETWORKS = envlist("JPT_URL_FETCH_ALLOWED_NETWORKS")
JPT_URL_FETCH_TIMEOUT_SECONDS = envfloat("JPT_URL_FETCH_TIMEOUT_SECONDS", 15)
# Looking up the URL's host gives up after this (the resolver itself may retry for much longer).
JPT_URL_FETCH_DNS_TIMEOUT_SECONDS = envfloat("JPT_URL_FETCH_DNS_TIMEOUT_SECONDS", 5)
JPT_URL_FETCH_MAX_REDIRECTS = envint("JPT_URL_FETCH_MAX_REDIRECTS", 3)

# Webhooks: every app server's process runs a delivery loop unless this is off.
JPT_WEBHOOK_DELIVERY = envbool("JPT_WEBHOOK_DELIVERY", True)
# The wait before each retry of an event whose delivery failed (a tenth of it either way, at
# random); after the last, the event is given up on: about three days in all.
JPT_WEBHOOK_RETRY_SECONDS = [
    float(s) for s in envlist("JPT_WEBHOOK_RETRY_SECONDS", "5,300,1800,7200,18000,36000,86400,86400")
]
JPT_WEBHOOK_TIMEOUT_SECONDS = envfloat("JPT_WEBHOOK_TIMEOUT_SECONDS", 15)
# Deliveries in flight at once, per process.
JPT_WEBHOOK_CONCURRENCY = envint("JPT_WEBHOOK_CONCURRENCY", 16)
# How often the loop looks for due retries (a finished transcription wakes it at once).
JPT_WEBHOOK_POLL_SECONDS = envfloat("JPT_WEBHOOK_POLL_SECONDS", 1)
# After a key's signing secret is rotated, the old one signs beside the new one this long.
JPT_WEBHOOK_SECRET_OVERLAP_HOURS = envfloat("JPT_WEBHOOK_SECRET_OVERLAP_HOURS", 24)

# The server's own demo worker: its key (made once under var/ unless given) and its engine.
JPT_DEMO_WORKER_KEY = os.environ.get("JPT_DEMO_WORKER_KEY", "")
JPT_DEMO_WORKER_KEY_FILE = os.environ.get("JPT_DEMO_WORKER_KEY_FILE", str(VAR_DIR / "demo_worker.key"))
# Its worker id; unset, one per app server (host name and port), so the demo workers of several
# nodes on one database are as many workers, not one row they fight over.
JPT_DEMO_WORKER_ID = os.environ.get("JPT_DEMO_WORKER_ID", "")
JPT_DEMO_ENGINE = os.environ.get("JPT_DEMO_ENGINE", "")
JPT_DEMO_MODEL = os.environ.get("JPT_DEMO_MODEL", "")
JPT_DEMO_THREADS = os.environ.get("JPT_DEMO_THREADS", "")

JPT_TRANSLATION_MODEL = os.environ.get("JPT_TRANSLATION_MODEL", str(VAR_DIR / "models" / "opus-mt-ja-en"))
JPT_TRANSLATION_EAGER = envbool("JPT_TRANSLATION_EAGER", False)  # load at server start, not on first use
JPT_TRANSLATION_CACHE_SIZE = envint("JPT_TRANSLATION_CACHE_SIZE", 2048)
# On 2 cores, two batches side by side beat one batch on two threads (1.5–2.5× measured here).
JPT_TRANSLATION_INTER_THREADS = envint("JPT_TRANSLATION_INTER_THREADS", 2)
JPT_TRANSLATION_INTRA_THREADS = envint("JPT_TRANSLATION_INTRA_THREADS", 1)
# POST /v1/translate refuses a longer text with 413 text_too_long.
JPT_TRANSLATION_MAX_CHARS = envint("JPT_TRANSLATION_MAX_CHARS", 5000)
JPT_TRANSLATION_MAX_INPUT_TOKENS = envint("JPT_TRANSLATION_MAX_INPUT_TOKENS", 256)
JPT_TRANSLATION_BEAM_SIZE = envint("JPT_TRANSLATION_BEAM_SIZE", 1)
# Decoding stops at this many times the source length if the model has not stopped by itself.
JPT_TRANSLATION_LENGTH_FACTOR = envfloat("JPT_TRANSLATION_LENGTH_FACTOR", 3.0)
JPT_TRANSLATION_FETCH_URL = os.environ.get(
    "JPT_TRANSLATION_FETCH_URL", "https://object.pouta.csc.fi/OPUS-MT-models/ja-en/opus-2019-12-18.zip"
)
# `serve` (make run) fetches and converts the model in the background when it is missing. Off by
# default under pytest (PYTEST_VERSION), also in the servers tests start (they inherit it): no
# test reaches the internet.
JPT_TRANSLATION_AUTO_FETCH = envbool("JPT_TRANSLATION_AUTO_FETCH", not os.environ.get("PYTEST_VERSION"))
# After a failed download (offline) it tries again after this long, doubling up to a day; 0: only at the next start.
JPT_TRANSLATION_AUTO_FETCH_RETRY_SECONDS = envfloat("JPT_TRANSLATION_AUTO_FETCH_RETRY_SECONDS", 3600)
