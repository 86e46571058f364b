"""Configuration from the environment (``RAGLINE_*``), read once per instance.

Secret values may be Secret Manager references (``sm://projects/p/secrets/s/versions/v``
or ``sm://s``); :mod:`shared.secrets` resolves them lazily and caches them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelPrice(BaseModel):
    """What a chat model costs, in US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(ge=0, description="USD per 1M prompt (input) tokens")
    completion: float = Field(ge=0, description="USD per 1M completion (output) tokens")


# OpenAI's list prices (standard tier) of the chat models the project configures, and
# the offline answerer, which calls no model. A dated snapshot ("gpt-4o-mini-2024-07-18")
# is priced as its model; a model missing here has no estimated cost.
DEFAULT_MODEL_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(prompt=0.15, completion=0.60),
    "gpt-4o": ModelPrice(prompt=2.50, completion=10.00),
    "gpt-4.1": ModelPrice(prompt=2.00, completion=8.00),
    "gpt-4.1-mini": ModelPrice(prompt=0.40, completion=1.60),
    "gpt-4.1-nano": ModelPrice(prompt=0.10, completion=0.40),
    "extractive": ModelPrice(prompt=0.0, completion=0.0),
}


class ParseLimits(BaseSettings):
    """Limits that protect the parse step from hostile or oversized input."""

    model_config = SettingsConfigDict(env_prefix="RAGLINE_PARSE_", extra="ignore")

    max_bytes: int = Field(100 * 1024 * 1024, description="largest document accepted")
    max_pages: int = Field(2000, description="most PDF pages parsed")
    max_text_chars: int = Field(20_000_000, description="most characters of extracted text")
    max_unzipped_bytes: int = Field(
        200 * 1024 * 1024, description="most bytes a DOCX may expand to (zip-bomb guard)"
    )
    max_compression_ratio: float = Field(
        100.0, description="largest uncompressed/compressed ratio of any DOCX member"
    )
    # OCR costs seconds a page on one vCPU: these keep a parse inside its function's
    # timeout (540 s) and refuse what cannot fit, rather than time out and retry.
    max_ocr_pages: int = Field(
        30, ge=0, description="most pages OCRed in one document (scanned PDF pages, image frames)"
    )
    max_ocr_seconds: float = Field(
        420.0,
        gt=0,
        description="OCR time one document may take, checked between pages (a page runs whole)",
    )
    max_image_pixels: int = Field(
        50_000_000,
        ge=1,
        description="largest image (width x height of a frame), checked before decoding it",
    )
    ocr_dpi: int = Field(
        200, ge=72, le=600, description="resolution scanned PDF pages are OCRed at"
    )
    ocr_max_page_pixels: int = Field(
        12_000_000,
        ge=1_000_000,
        description="most pixels a page is OCRed at; larger pages and images are scaled down",
    )


class Settings(BaseSettings):
    """Every setting a Ragline function reads.

    Defaults suit the local stack; production values come from Terraform.
    """

    # populate_by_name: fields read through an alias (OPENAI_*) can still be given by
    # name, e.g. ``settings.model_copy(update=...)`` or ``Settings(openai_model=...)``.
    model_config = SettingsConfigDict(
        env_prefix="RAGLINE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    project: str = Field("ragline-local", description="Google Cloud project id")
    region: str = "us-central1"

    # Database: a libpq-style URL locally (unix socket via ?host=), Cloud SQL in production.
    database_url: str = Field(
        "", description="postgresql://user:pass@/db?host=/socket/dir or host:port form"
    )
    cloudsql_instance: str = Field("", description="project:region:instance (production)")
    db_user: str = "ragline"
    db_name: str = "ragline"
    db_password: str = Field("", description="empty for IAM database auth; may be sm://")
    db_pool_size: int = 4

    # Buckets.
    upload_bucket: str = "ragline-uploads"
    work_bucket: str = "ragline-work"

    # Pub/Sub topics and Cloud Tasks.
    topic_parse: str = "ragline-parse"
    topic_chunk: str = "ragline-chunk"
    topic_index: str = "ragline-index"
    topic_lifecycle: str = "ragline-lifecycle"
    topic_dead_letter: str = "ragline-dead-letter"
    tasks_location: str = "us-central1"
    tasks_queue: str = "ragline-embed"
    embed_url: str = Field("", description="HTTPS URL of the embed function (task target)")
    tasks_service_account: str = Field("", description="identity for the OIDC token of tasks")
    # Longer than the embed function's timeout (300 s): an attempt then ends on the
    # function's side instead of being retried by Cloud Tasks while it still runs.
    embed_dispatch_deadline_s: int = Field(
        330, ge=15, le=1800, description="seconds Cloud Tasks waits for one embed attempt"
    )

    # Traces: off, or exported by the OpenTelemetry SDK (which the deployment then
    # installs, with the exporter's package: shared/trace_export.py).
    trace_export: Literal["", "cloudtrace", "otlp"] = Field(
        "", description="'' (off), 'cloudtrace' (Cloud Trace) or 'otlp' (OTEL_EXPORTER_OTLP_*)"
    )

    # Delivery.
    max_attempts: int = Field(5, description="deliveries before a message is dead-lettered")
    max_event_age_s: int = Field(
        6 * 3600, description="older events are failed instead of retried forever"
    )

    # Crash safety (shared/pipeline/leases.py). An attempt at a stage holds the version
    # with a lease it renews every lease_s / 3 while it works; a redelivered message or
    # a re-drive takes over only once the lease expired. The sweeper re-drives versions
    # with no live lease and no progress for stall_after_s, and fails a stage as stalled
    # once more than max_sweeps of its attempts were lost (or re-drives went
    # unanswered). Keep lease_s >= the longest step's timeout (parse: 540 s) and
    # lease_s < stall_after_s; the local stack sweeps every sweep_interval_s.
    lease_s: int = Field(600, description="seconds a stage attempt holds its version unrenewed")
    stall_after_s: int = Field(900, description="seconds without progress before a re-drive")
    max_sweeps: int = Field(3, description="lost attempts per stage before it fails as stalled")
    sweep_interval_s: float = Field(
        60.0, description="seconds between the local stack's sweeps (Cloud Scheduler's job)"
    )

    # Live document events (GET /v1/documents/{id}/events): one stream stays open at most
    # this long, less than the manage function's timeout (60 s) so it ends cleanly; the
    # client reconnects with Last-Event-ID (EventSource does) and resumes where it was.
    events_stream_s: int = Field(45, description="seconds one document event stream stays open")

    # The outbox of lifecycle events (shared/pipeline/outbox.py).
    outbox_batch_size: int = Field(100, description="events one relay run publishes at most")
    outbox_retry_base_s: float = Field(
        2.0, description="seconds before retrying a failed publish (doubling per failure)"
    )
    outbox_retry_max_s: float = Field(600.0, description="longest wait between publish retries")
    outbox_retention_days: int = Field(
        7, description="days published events and webhook delivery logs are kept"
    )

    # Webhooks (shared/pipeline/webhooks.py): deliveries are Cloud Tasks on their own queue.
    webhook_tasks_queue: str = "ragline-webhooks"
    webhook_delivery_url: str = Field(
        "", description="HTTPS URL of the deliver_webhook function (task target)"
    )
    webhook_timeout_s: float = Field(10.0, description="seconds a receiver has to answer")
    webhook_max_failures: int = Field(
        10, description="consecutive failed deliveries before a webhook is disabled"
    )
    webhook_max_attempts: int = Field(
        5, description="delivery attempts of one event before it is given up"
    )
    # Sources (shared/pipeline/sync.py): sync runs are Cloud Tasks on their own queue,
    # one task per item; the sweep starts due runs and re-drives runs with no progress
    # for stall_after_s (max_sweeps times, then their pending items fail).
    sync_tasks_queue: str = "ragline-sync"
    sync_url: str = Field("", description="HTTPS URL of the sync function (task target)")
    source_buckets: list[str] = Field(
        default_factory=list,
        description="buckets gcs sources may read (Terraform grants the functions read on them)",
    )
    source_max_items: int = Field(
        10_000, ge=1, description="items one sync run visits at most (a source may ask fewer)"
    )
    source_max_item_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="largest file a source's item may bring in"
    )
    # Outbound requests to user-given URLs refuse private, loopback, link-local and
    # metadata addresses (shared/net/guard.py). Only tests list networks here (their
    # loopback receiver); production leaves it empty.
    outbound_allow_networks: list[str] = Field(
        default_factory=list,
        description='test-only: CIDRs outbound requests may reach anyway, e.g. ["127.0.0.1/32"]',
    )
    # Web sources (shared/sources/web/): what one fetch of a crawled page may take.
    crawl_max_bytes: int = Field(
        25 * 1024 * 1024, gt=0, description="largest page or file a web source fetches"
    )
    crawl_timeout_s: float = Field(
        60.0, gt=0, description="seconds one fetch may take, redirects included"
    )

    # Ingestion.
    max_upload_bytes: int = Field(
        25 * 1024 * 1024, description="largest multipart upload; larger files use signed URLs"
    )
    signed_url_ttl_s: int = 900
    upload_expiry_grace_s: int = Field(
        3600,
        ge=0,
        description="seconds after a signed upload URL expires before the sweep gives up"
        " on its file and removes what waited for it",
    )
    download_url_ttl_s: int = Field(
        300, description="seconds a signed URL to download a document's file stays valid"
    )
    signing_key_file: str = Field(
        "", description="service-account JSON that signs upload URLs locally (unset in GCP)"
    )
    default_embedding_model: str = Field(
        "hashing-384", description="model new knowledge bases use unless they choose one"
    )
    chunk_tokens: int = 500
    chunk_overlap: int = 50
    embed_batch_size: int = Field(64, description="chunks per embed task")
    # This instance's share of the embeddings provider's limits (OpenAI's tier 1 for
    # text-embedding-3-small by default); Terraform divides the project's limits among
    # the embed function's instances (infra/terraform/main.tf, local.embedding).
    embedding_rpm: int = Field(3000, ge=1, description="embedding requests per minute")
    embedding_tpm: int = Field(1_000_000, ge=1, description="embedding tokens per minute")
    embedding_request_tokens: int = Field(
        300_000, ge=1, le=300_000, description="most tokens in one embeddings request"
    )

    # Identity (local stack: a single built-in principal until the identity issue lands).
    default_principal: str = "local-user"
    default_workspace: str = "default"
    cors_origins: list[str] = Field(
        default_factory=list,
        description='frontend origins allowed to call the API, a JSON list: ["https://app.example"]',
    )
    # Provisioning memberships from the credential (shared/api/authn.py).
    auth_bootstrap_owners: list[str] = Field(
        default_factory=list,
        description='verified emails that own the default workspace, a JSON list: ["a@b.c"]',
    )
    auth_role_claims: bool = Field(
        False,
        description="trust the issuer's ragline_workspace/ragline_role claims for memberships",
    )

    # ID tokens (shared/identity): who signs the bearer tokens callers present, for whom,
    # and where its public keys are. The local stack fills issuer and keys URL in with
    # its own issuer (scripts/localstack/issuer.py); production takes Identity
    # Platform's: issuer https://securetoken.google.com/<project>, audience <project>,
    # keys https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com
    auth_issuer: str = Field(
        "", description="the iss every ID token must carry (empty: ID tokens are not accepted)"
    )
    auth_audience: str = Field(
        "ragline-local",
        description="the aud every ID token must carry (Identity Platform: project id)",
    )
    auth_jwks_url: str = Field("", description="URL of the issuer's public keys (a JWKS)")
    auth_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256"],
        description='signature algorithms accepted, a JSON list (asymmetric only), e.g. ["RS256"]',
    )
    # Behind Identity-Aware Proxy: the signed header x-goog-iap-jwt-assertion (ES256,
    # issuer https://cloud.google.com/iap, keys at gstatic), checked for this audience.
    auth_iap_audience: str = Field(
        "",
        description="IAP's aud, /projects/<number>/global/backendServices/<id> (empty: no IAP)",
    )

    # OpenAI: read without the RAGLINE_ prefix, as the openai client reads them (and as
    # Terraform sets the key from Secret Manager). No key: the offline extractive answerer.
    openai_api_key: str = Field(
        "", validation_alias="OPENAI_API_KEY", description="OpenAI API key (empty: offline)"
    )
    openai_model: str = Field(
        "", validation_alias="OPENAI_MODEL", description="chat model (empty: gpt-4o-mini)"
    )
    openai_base_url: str = Field(
        "",
        validation_alias="OPENAI_BASE_URL",
        description="an OpenAI-compatible server's URL (empty: api.openai.com)",
    )

    # Quotas and rate limits (shared/api/quotas.py): the defaults of every workspace,
    # which its admins may change (PUT /v1/workspaces/{name}/limits). 0: unlimited.
    quota_requests_per_minute: int = Field(
        600, ge=0, description="requests a person may send per minute"
    )
    quota_api_key_requests_per_minute: int = Field(
        600, ge=0, description="requests an API key may send per minute"
    )
    quota_questions_per_day: int = Field(
        1000, ge=0, description="questions a principal may ask per UTC day in a workspace"
    )
    quota_tokens_per_question: int = Field(
        0, ge=0, description="most estimated tokens (prompt + answer) of one question"
    )
    quota_monthly_tokens: int = Field(
        0, ge=0, description="model tokens a workspace may use per UTC month"
    )

    # Answering.
    answer_context_tokens: int = Field(
        6000, description="estimated tokens of the whole prompt: instructions, history, sources"
    )
    answer_max_tokens: int = Field(800, description="most tokens an answer may generate")
    answer_temperature: float = Field(0.1, description="sampling temperature of answers")
    answer_history_exchanges: int = Field(
        3, description="earlier exchanges of a session included in the prompt"
    )
    openai_timeout_s: float = Field(
        60.0, description="seconds to connect, or between two bytes of a response"
    )
    openai_max_retries: int = Field(
        3, description="client retries on 408/409/429/5xx and connection errors"
    )
    # The answer function's timeout (300 s) must cover this plus one openai_timeout_s (a
    # model read in progress when the deadline passes) and a margin; tests check it.
    answer_deadline_s: float = Field(
        200.0, description="seconds from question to last token before an answer is ended"
    )

    # Answering: retrieval and request limits.
    answer_top_k: int = Field(8, description="passages retrieved for a question by default")
    answer_min_similarity: float | None = Field(
        None, description="drop passages less cosine-similar to the question (None: keep)"
    )
    answer_max_question_chars: int = Field(4000, description="longest question accepted")

    # Analytics: estimated cost by model (a JSON object in the environment, e.g.
    # RAGLINE_MODEL_PRICES='{"my-model": {"prompt": 1.0, "completion": 2.0}}').
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_MODEL_PRICES),
        description="USD per 1M prompt and completion tokens, by chat model",
    )
    analytics_max_days: int = Field(
        366, ge=1, description="longest time range one analytics request may cover"
    )

    # Reranking the fused candidates (shared/retrieval/rerank.py); off by default. Any
    # failure or timeout keeps the fused order.
    rerank: Literal["off", "llm", "endpoint"] = Field(
        "off", description="off, llm (the chat model, listwise) or endpoint (a /rerank API)"
    )
    rerank_candidates: int = Field(20, description="fused candidates the reranker orders")
    rerank_timeout_s: float = Field(5.0, description="seconds a rerank call may take")
    rerank_model: str = Field("", description="reranking model (llm: empty is OPENAI_MODEL)")
    rerank_url: str = Field("", description="the /rerank endpoint (endpoint mode)")
    rerank_api_key: str = Field("", description="bearer token for the /rerank endpoint")
    rerank_texts_field: Literal["documents", "texts"] = Field(
        "documents", description="documents (Cohere, Jina) or texts (Hugging Face TEI)"
    )

    @field_validator("answer_min_similarity", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        """Read an empty optional number as unset, as deploy tools write "no value"."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _leases_end_before_stalls(self) -> Settings:
        """A live attempt's lease must end before the sweeper may call its version stalled."""
        if not 0 < self.lease_s < self.stall_after_s:
            raise ValueError(
                f"lease_s ({self.lease_s}) must be positive and below stall_after_s"
                f" ({self.stall_after_s})"
            )
        return self


def read_settings() -> Settings:
    """Read the settings from the environment now (tests that change it read again)."""
    return Settings()  # type: ignore[call-arg]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings of this instance, read from the environment once."""
    return read_settings()


@lru_cache(maxsize=1)
def get_parse_limits() -> ParseLimits:
    """Return the parse limits of this instance, read from the environment once."""
    return ParseLimits()  # type: ignore[call-arg]
