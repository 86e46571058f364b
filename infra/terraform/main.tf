# Shared locals: the function catalogue and the grants each function identity needs. Everything
# else (functions.tf, iam.tf, pubsub.tf, loadbalancer.tf) iterates over these maps, so adding a
# function or a permission is a one-line change here.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  project_number = data.google_project.this.number

  upload_bucket_name = coalesce(var.upload_bucket_name, "${var.project_id}-${var.name_prefix}-uploads")
  work_bucket_name   = coalesce(var.work_bucket_name, "${var.project_id}-${var.name_prefix}-work")

  # Topic key -> topic name. Keys are what the maps below refer to.
  topics = {
    parse       = var.topic_parse
    chunk       = var.topic_chunk
    index       = var.topic_index
    lifecycle   = var.topic_lifecycle
    dead_letter = var.topic_dead_letter
  }

  # Every deployed function. Keys name the deployment (function "<prefix>-<key>"), entry_point
  # is the target in main.py, identity is the key of its service account (both ingest
  # deployments share one). trigger: http (public API), tasks (Cloud Tasks OIDC), pubsub (our
  # push subscription on `topic`), gcs (Eventarc storage event `event_type`), scheduler (a Cloud
  # Scheduler job, OIDC; scheduler.tf). env: variables for this function only, on top of
  # local.common_env.
  functions = {
    upload = {
      entry_point   = "upload"
      identity      = "upload"
      description   = "Validate an upload, create the document version and return a V4 signed PUT URL."
      trigger       = "http"
      public        = true
      memory        = "1Gi"
      cpu           = "1"
      timeout       = 120
      min_instances = 0
      max_instances = 20
      concurrency   = 4
      topic         = null
      event_type    = null
      secrets       = []
      env           = {}
    }
    manage = {
      entry_point   = "manage"
      identity      = "manage"
      description   = "Knowledge bases, documents, status, history, feedback, access, analytics, audit."
      trigger       = "http"
      public        = true
      memory        = "512Mi"
      cpu           = "1"
      timeout       = 60
      min_instances = 0
      max_instances = 20
      concurrency   = 4
      topic         = null
      event_type    = null
      secrets       = []
      env           = {}
    }
    answer = {
      entry_point   = "answer"
      identity      = "answer"
      description   = "Hybrid retrieval and grounded, cited answers (JSON and SSE)."
      trigger       = "http"
      public        = true
      memory        = "1Gi"
      cpu           = "1"
      timeout       = 300 # streamed answers hold the request open
      min_instances = var.answer_min_instances
      max_instances = 50
      concurrency   = 4
      topic         = null
      event_type    = null
      secrets       = ["openai"]
      # Optional settings are omitted when unset: the settings' own defaults apply then.
      env = merge(
        { OPENAI_MODEL = var.openai_model },
        var.answer_min_similarity == null ? {} : { RAGLINE_ANSWER_MIN_SIMILARITY = tostring(var.answer_min_similarity) },
        var.openai_base_url == "" ? {} : { OPENAI_BASE_URL = var.openai_base_url },
      )
    }
    mcp = {
      entry_point   = "mcp"
      identity      = "mcp"
      description   = "The MCP endpoint (/mcp): list knowledge bases, search, ask, get documents."
      trigger       = "http"
      public        = true
      memory        = "1Gi"
      cpu           = "1"
      timeout       = 300 # the ask tool waits for a whole answer
      min_instances = 0
      max_instances = 20
      concurrency   = 4
      topic         = null
      event_type    = null
      secrets       = ["openai"]
      env = merge(
        { OPENAI_MODEL = var.openai_model },
        var.answer_min_similarity == null ? {} : { RAGLINE_ANSWER_MIN_SIMILARITY = tostring(var.answer_min_similarity) },
        var.openai_base_url == "" ? {} : { OPENAI_BASE_URL = var.openai_base_url },
      )
    }
    embed = {
      entry_point   = "embed"
      identity      = "embed"
      description   = "Embed a batch of chunks (Cloud Tasks HTTP target, OIDC)."
      trigger       = "tasks"
      public        = false
      memory        = "512Mi"
      cpu           = "1"
      timeout       = 300
      min_instances = 0
      max_instances = local.embed_instances
      concurrency   = 1
      topic         = null
      event_type    = null
      secrets       = ["openai"]
      env           = {}
    }
    ingest = {
      entry_point   = "ingest"
      identity      = "ingest"
      description   = "Map a finalized upload object to a knowledge base, dedupe, create a version, publish parse."
      trigger       = "gcs"
      public        = false
      memory        = "512Mi"
      cpu           = "1"
      timeout       = 120
      min_instances = 0
      max_instances = 20
      concurrency   = 1
      topic         = null
      event_type    = "google.cloud.storage.object.v1.finalized"
      secrets       = []
      env           = {}
    }
    ingest_deleted = {
      entry_point   = "ingest"
      identity      = "ingest"
      description   = "Same target as ingest, for deleted upload objects (removes the document)."
      trigger       = "gcs"
      public        = false
      memory        = "512Mi"
      cpu           = "1"
      timeout       = 120
      min_instances = 0
      max_instances = 10
      concurrency   = 1
      topic         = null
      event_type    = "google.cloud.storage.object.v1.deleted"
      secrets       = []
      env           = {}
    }
    parse = {
      entry_point   = "parse"
      identity      = "parse"
      description   = "Extract structured text and write parsed JSON to the work bucket; publish chunk."
      trigger       = "pubsub"
      public        = false
      memory        = "2Gi"
      cpu           = "1"
      timeout       = 540 # <= 600: the push subscription's ack deadline mirrors it
      min_instances = 0
      max_instances = 10
      concurrency   = 1
      topic         = "parse"
      event_type    = null
      secrets       = []
      env           = {}
    }
    chunk = {
      entry_point   = "chunk"
      identity      = "chunk"
      description   = "Split parsed text into token-bounded chunks, upsert rows, enqueue embed tasks."
      trigger       = "pubsub"
      public        = false
      memory        = "1Gi"
      cpu           = "1"
      timeout       = 300
      min_instances = 0
      max_instances = 10
      concurrency   = 1
      topic         = "chunk"
      event_type    = null
      secrets       = []
      env           = {}
    }
    index = {
      entry_point   = "index"
      identity      = "index"
      description   = "Activate the new version atomically, drop the superseded chunks, mark ready."
      trigger       = "pubsub"
      public        = false
      memory        = "512Mi"
      cpu           = "1"
      timeout       = 120
      min_instances = 0
      max_instances = 10
      concurrency   = 1
      topic         = "index"
      event_type    = null
      secrets       = []
      env           = {}
    }
    dead_letter = {
      entry_point   = "dead_letter"
      identity      = "dead_letter"
      description   = "Fail the version of a dead-lettered message with its last error."
      trigger       = "pubsub"
      public        = false
      memory        = "256Mi"
      cpu           = "0.583" # Cloud Run's default for 256Mi; concurrency 1 allows < 1 vCPU
      timeout       = 60
      min_instances = 0
      max_instances = 5
      concurrency   = 1
      topic         = "dead_letter"
      event_type    = null
      secrets       = []
      env           = {}
    }
    sweep = {
      entry_point   = "sweep"
      identity      = "sweep"
      description   = "Re-drive versions stalled in the pipeline (republish parse/chunk/index, re-enqueue embed tasks); fail those stalled too often."
      trigger       = "scheduler"
      public        = false
      memory        = "512Mi"
      cpu           = "1"
      timeout       = 300 # < the scheduler job's attempt_deadline (320 s)
      min_instances = 0
      max_instances = 1 # one sweep at a time: overlapping sweeps would re-drive the same versions
      concurrency   = 1
      topic         = null
      event_type    = null
      secrets       = []
      env = {
        RAGLINE_STALL_AFTER_S = tostring(var.stall_after_seconds)
        RAGLINE_MAX_SWEEPS    = tostring(var.max_sweeps)
      }
    }
    webhooks = {
      entry_point   = "webhooks"
      identity      = "webhooks"
      description   = "Fan each lifecycle event out to the subscribed webhooks: one named delivery task each."
      trigger       = "pubsub"
      public        = false
      memory        = "256Mi"
      cpu           = "0.583"
      timeout       = 60
      min_instances = 0
      max_instances = 5
      concurrency   = 1
      topic         = "lifecycle"
      event_type    = null
      secrets       = []
      env = {
        RAGLINE_WEBHOOK_TASKS_QUEUE  = google_cloud_tasks_queue.webhooks.name
        RAGLINE_WEBHOOK_DELIVERY_URL = local.deliver_webhook_url
      }
    }
    sync = {
      entry_point   = "sync"
      identity      = "sync"
      description   = "Run one step of a source's sync (Cloud Tasks HTTP target, OIDC): list its roots, or visit one item and hand what changed to the pipeline."
      trigger       = "tasks"
      public        = false
      memory        = "1Gi" # an item's file is held in memory (RAGLINE_SOURCE_MAX_ITEM_BYTES)
      cpu           = "1"
      timeout       = 540 # < the stage lease and the stall window: a lost task is re-driven only after
      min_instances = 0
      max_instances = 10
      concurrency   = 1
      topic         = null
      event_type    = null
      secrets       = []
      env           = {}
    }
    deliver_webhook = {
      entry_point   = "deliver_webhook"
      identity      = "deliver_webhook"
      description   = "POST one signed lifecycle event to one webhook (Cloud Tasks HTTP target, OIDC); SSRF-guarded."
      trigger       = "tasks"
      public        = false
      memory        = "256Mi"
      cpu           = "0.583"
      timeout       = 60
      min_instances = 0
      max_instances = 10
      concurrency   = 1
      topic         = null
      event_type    = null
      secrets       = []
      env = {
        RAGLINE_WEBHOOK_MAX_ATTEMPTS = tostring(var.max_delivery_attempts)
      }
    }
  }

  # What each identity may touch. buckets: bucket key -> role on that bucket only; publishes:
  # topic keys it may publish to; secrets: secret keys it may read; enqueues_embed: may create
  # embed tasks (enqueuer on the queue, actAs the tasks invoker whose OIDC token they carry).
  identities = {
    upload = {
      # objectAdmin: a signed PUT may overwrite, and the multipart/URL paths write directly.
      buckets           = { uploads = "roles/storage.objectAdmin" }
      publishes         = []
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    manage = {
      # Deleting a document removes its upload object and parsed JSON; reprocessing and
      # re-embedding start the pipeline again; creating or syncing a source enqueues the
      # first task of its run (sources API).
      buckets           = { uploads = "roles/storage.objectAdmin", work = "roles/storage.objectAdmin" }
      publishes         = ["parse", "chunk", "lifecycle"]
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = true
    }
    answer = {
      buckets           = {}
      publishes         = []
      secrets           = ["openai"]
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    mcp = {
      # The answer function's reads and writes (chat turns), over MCP.
      buckets           = {}
      publishes         = []
      secrets           = ["openai"]
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    ingest = {
      buckets           = { uploads = "roles/storage.objectViewer", work = "roles/storage.objectAdmin" }
      publishes         = ["parse", "lifecycle"]
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    parse = {
      buckets           = { uploads = "roles/storage.objectViewer", work = "roles/storage.objectAdmin" }
      publishes         = ["chunk", "lifecycle"]
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    chunk = {
      buckets           = { work = "roles/storage.objectViewer" }
      publishes         = ["lifecycle"]
      secrets           = []
      enqueues_embed    = true
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    embed = {
      # Cloud Tasks has no dead-letter queue: on its last attempt (X-CloudTasks-TaskRetryCount
      # vs RAGLINE_MAX_ATTEMPTS) embed fails the version itself and announces it on lifecycle.
      buckets           = {}
      publishes         = ["index", "lifecycle"]
      secrets           = ["openai"]
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    index = {
      buckets           = {}
      publishes         = ["lifecycle"]
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    dead_letter = {
      buckets           = {}
      publishes         = ["lifecycle"]
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
    sweep = {
      # Re-drives stalled versions: republishes the step message a version is stuck at, or
      # re-enqueues its embed tasks (hence enqueuer + actAs the tasks invoker, like chunk), and
      # announces versions it gives up on; starts due source syncs and re-enqueues the lost
      # tasks of stalled ones (sync tasks: enqueuer + actAs the tasks invoker too). Reads and
      # writes only the database, no bucket: the sync function does what a run deletes.
      buckets           = {}
      publishes         = ["parse", "chunk", "index", "lifecycle"]
      secrets           = []
      enqueues_embed    = true
      enqueues_webhooks = false
      enqueues_sync     = true
    }
    webhooks = {
      buckets           = {}
      publishes         = []
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = true
      enqueues_sync     = false
    }
    sync = {
      # Writes what a source brought where uploads go and deletes the documents of items
      # that are gone (their objects and parsed JSON); hands new versions to parse; enqueues
      # the run's next tasks. Reads the buckets named in var.source_buckets (iam.tf).
      buckets           = { uploads = "roles/storage.objectAdmin", work = "roles/storage.objectAdmin" }
      publishes         = ["parse", "lifecycle"]
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = true
    }
    deliver_webhook = {
      # Reads the event and the webhook, logs the attempt; calls out only to webhook URLs.
      buckets           = {}
      publishes         = []
      secrets           = []
      enqueues_embed    = false
      enqueues_webhooks = false
      enqueues_sync     = false
    }
  }

  # Identities that call other services on the platform's behalf (never run code).
  invokers = {
    push      = "Pub/Sub push subscriptions (OIDC) -> parse, chunk, index, dead_letter, webhooks"
    tasks     = "Cloud Tasks embed, webhook delivery and sync tasks (OIDC) -> embed, deliver_webhook, sync"
    eventarc  = "Eventarc storage triggers -> ingest"
    scheduler = "Cloud Scheduler sweep job (OIDC) -> sweep"
  }

  # Which invoker may call which function; public functions are invocable by allUsers.
  invoker_of_trigger = {
    pubsub    = "push"
    tasks     = "tasks"
    gcs       = "eventarc"
    scheduler = "scheduler"
  }

  # The embed function's URL, needed by chunk (task target) before embed exists in the same
  # for_each. Cloud Run's deterministic URL avoids a self-reference cycle and is an accepted
  # OIDC audience.
  embed_url = "https://${var.name_prefix}-embed-${local.project_number}.${var.region}.run.app"
  # The same for the webhook delivery function, the target of the webhooks queue's tasks.
  deliver_webhook_url = "https://${var.name_prefix}-deliver-webhook-${local.project_number}.${var.region}.run.app"
  # And for the sync function, the target of the sync queue's tasks.
  sync_url = "https://${var.name_prefix}-sync-${local.project_number}.${var.region}.run.app"

  # Production HTTP path map (load balancer and local stack alike). Evaluated in priority
  # order; anything unmatched (rest of /v1, /healthz) goes to manage.
  lb_routes = [
    {
      priority = 10
      function = "upload"
      method   = "POST"
      # {id} is one path segment.
      templates = ["/v1/knowledge-bases/*/documents"]
      prefixes  = []
      paths     = []
    },
    {
      priority  = 20
      function  = "upload"
      method    = null
      templates = ["/v1/knowledge-bases/*/uploads", "/v1/knowledge-bases/*/uploads/**"]
      prefixes  = []
      paths     = []
    },
    {
      priority  = 30
      function  = "answer"
      method    = null
      templates = []
      prefixes  = ["/v1/turns/", "/v1/sessions/", "/v1/citations/", "/v1/evaluations/", "/v1/openai/"]
      paths     = ["/v1/ask", "/v1/ask/stream", "/v1/retrieve", "/v1/sessions"]
    },
    {
      # Evaluation runs answer questions: the function holding the model's key runs them.
      priority  = 40
      function  = "answer"
      method    = null
      templates = ["/v1/knowledge-bases/*/evaluations"]
      prefixes  = []
      paths     = []
    },
    {
      priority  = 50
      function  = "mcp"
      method    = null
      templates = []
      prefixes  = []
      paths     = ["/mcp"]
    },
  ]
  lb_default_function = "manage"

  common_env = merge(
    {
      RAGLINE_PROJECT               = var.project_id
      RAGLINE_REGION                = var.region
      RAGLINE_CLOUDSQL_INSTANCE     = google_sql_database_instance.main.connection_name
      RAGLINE_DB_NAME               = var.db_name
      RAGLINE_UPLOAD_BUCKET         = google_storage_bucket.uploads.name
      RAGLINE_WORK_BUCKET           = google_storage_bucket.work.name
      RAGLINE_TOPIC_PARSE           = google_pubsub_topic.topic["parse"].name
      RAGLINE_TOPIC_CHUNK           = google_pubsub_topic.topic["chunk"].name
      RAGLINE_TOPIC_INDEX           = google_pubsub_topic.topic["index"].name
      RAGLINE_TOPIC_LIFECYCLE       = google_pubsub_topic.topic["lifecycle"].name
      RAGLINE_TOPIC_DEAD_LETTER     = google_pubsub_topic.topic["dead_letter"].name
      RAGLINE_TASKS_LOCATION        = google_cloud_tasks_queue.embed.location
      RAGLINE_TASKS_QUEUE           = google_cloud_tasks_queue.embed.name
      RAGLINE_EMBED_URL             = local.embed_url
      RAGLINE_TASKS_SERVICE_ACCOUNT = google_service_account.invoker["tasks"].email
      RAGLINE_MAX_ATTEMPTS          = tostring(var.max_delivery_attempts)
      # Sources: manage and sweep start runs, sync runs them; gcs sources may read these.
      RAGLINE_SYNC_TASKS_QUEUE = google_cloud_tasks_queue.sync.name
      RAGLINE_SYNC_URL         = local.sync_url
      RAGLINE_SOURCE_BUCKETS   = jsonencode(var.source_buckets)
      RAGLINE_MAX_EVENT_AGE_S  = tostring(var.max_event_age_seconds)
      # Identity (shared/api/authn.py): whose ID tokens are accepted. Identity Platform's
      # issuer and keys unless overridden; lists are JSON, as the settings read them.
      # Every upload origin may call the API too: a page got its signed URL from the API.
      RAGLINE_AUTH_ISSUER           = coalesce(var.auth_issuer, "https://securetoken.google.com/${var.project_id}")
      RAGLINE_AUTH_AUDIENCE         = coalesce(var.auth_audience, var.project_id)
      RAGLINE_AUTH_JWKS_URL         = var.auth_jwks_url
      RAGLINE_AUTH_IAP_AUDIENCE     = var.auth_iap_audience
      RAGLINE_AUTH_BOOTSTRAP_OWNERS = jsonencode(var.bootstrap_owners)
      RAGLINE_CORS_ORIGINS          = jsonencode(distinct(concat(var.allowed_origins, var.cors_origins)))
      # Logs are JSON lines on stdout; Cloud Logging parses severity from them.
      PYTHONUNBUFFERED = "1"
      # Each instance's share of the embeddings provider's limits (tasks.tf).
      RAGLINE_EMBEDDING_RPM            = tostring(local.embedding_share.rpm)
      RAGLINE_EMBEDDING_TPM            = tostring(local.embedding_share.tpm)
      RAGLINE_EMBEDDING_REQUEST_TOKENS = tostring(local.embedding_share.request_tokens)
    },
    # Every workspace's default quotas (shared/api/quotas.py); its admins may change them.
    {
      RAGLINE_QUOTA_REQUESTS_PER_MINUTE         = tostring(var.quota_defaults.requests_per_minute)
      RAGLINE_QUOTA_API_KEY_REQUESTS_PER_MINUTE = tostring(var.quota_defaults.api_key_requests_per_minute)
      RAGLINE_QUOTA_QUESTIONS_PER_DAY           = tostring(var.quota_defaults.questions_per_day)
      RAGLINE_QUOTA_TOKENS_PER_QUESTION         = tostring(var.quota_defaults.tokens_per_question)
      RAGLINE_QUOTA_MONTHLY_TOKENS              = tostring(var.quota_defaults.monthly_tokens)
    },
    var.function_env,
  )

  # Secret key -> Secret Manager secret and the environment variable it is exposed as.
  secrets = {
    openai = {
      secret_id = google_secret_manager_secret.openai_api_key.secret_id
      env       = "OPENAI_API_KEY"
    }
  }
}
