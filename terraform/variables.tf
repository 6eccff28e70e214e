variable "project_id" {
  description = "Google Cloud project that hosts everything."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the Cloud Run services, the buckets, the Eventarc trigger."
  type        = string
  default     = "us-central1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a single Google Cloud region such as us-central1 (Eventarc storage triggers need the bucket's region)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (services, buckets, topics, service accounts)."
  type        = string
  default     = "tts"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.name_prefix))
    error_message = "name_prefix must be 2-12 lowercase letters, digits or hyphens, starting with a letter (service account ids are 30 characters at most)."
  }
}

variable "image" {
  description = "The container image built from this repository's Dockerfile, in Artifact Registry (REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG or @sha256:DIGEST)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9-]+-docker\\.pkg\\.dev/[^/]+/[^/]+/[^:@]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.image))
    error_message = "image must be an Artifact Registry image with a tag or a digest."
  }
}

variable "engines" {
  description = "The engines the services serve, in order of preference (TTS_ENGINES): a request that names no voice goes to the first engine with a voice for its language. Each must be baked into var.image (the Dockerfile's ENGINES build argument: the same list or more)."
  type        = list(string)
  default     = ["hibari", "kokoro"]
  validation {
    condition     = length(var.engines) > 0 && length(distinct(var.engines)) == length(var.engines) && alltrue([for e in var.engines : contains(["hibari", "kokoro", "cosyvoice"], e)])
    error_message = "engines must name at least one of hibari, kokoro, cosyvoice, each at most once."
  }
}

variable "cpu" {
  description = "vCPUs per instance; also the thread count of the engine (TTS_THREADS) and of the native math libraries (OMP_NUM_THREADS, ...). Cloud Run ties memory to it: 1 vCPU allows up to 4 GiB, 2 up to 8, 4 from 2 to 16, 6 from 4 to 24, 8 from 4 to 32 (checked at plan)."
  type        = number
  default     = 2
  validation {
    condition     = contains([1, 2, 4, 6, 8], var.cpu)
    error_message = "cpu must be 1, 2, 4, 6 or 8 (Cloud Run allows fractions below 1, but synthesis is CPU bound)."
  }
}

variable "memory" {
  description = "Memory per instance (Kubernetes quantity, e.g. 3Gi). Unset (null): derived from engines (local.engine_memory_mib: hibari 2 GiB, kokoro 1 GiB, cosyvoice 4 GiB, added up), raised to the least Cloud Run allows for cpu. Every engine's model, one request and its audio must fit."
  type        = string
  default     = null
  validation {
    condition     = var.memory == null || can(regex("^[1-9][0-9]*(Mi|Gi)$", var.memory))
    error_message = "memory must be null (derived from engines) or look like 512Mi or 4Gi."
  }
}

variable "http_timeout_s" {
  description = "Request timeout of the HTTP service in seconds; the function plans within it (TTS_REQUEST_TIMEOUT_S) and gunicorn uses it (CLOUD_RUN_TIMEOUT_SECONDS)."
  type        = number
  default     = 300
  validation {
    condition     = var.http_timeout_s >= 10 && var.http_timeout_s <= 3600 && floor(var.http_timeout_s) == var.http_timeout_s
    error_message = "http_timeout_s must be a whole number of seconds from 10 to 3600 (Cloud Run's maximum)."
  }
}

variable "event_timeout_s" {
  description = "Request timeout of the event service in seconds (TTS_EVENT_TIMEOUT_S). Pub/Sub push waits at most the ack deadline (600 s) for a response, so it must fit inside it."
  type        = number
  default     = 540
  validation {
    condition     = var.event_timeout_s >= 10 && var.event_timeout_s <= 600 && floor(var.event_timeout_s) == var.event_timeout_s
    error_message = "event_timeout_s must be a whole number of seconds from 10 to 600 (the Pub/Sub ack deadline's maximum)."
  }
}

variable "http_min_instances" {
  description = "Instances of the HTTP service kept warm (model loaded after their first request). 0 scales to zero: no idle cost, cold starts."
  type        = number
  default     = 0
  validation {
    condition     = var.http_min_instances >= 0 && var.http_min_instances <= var.http_max_instances
    error_message = "http_min_instances must be between 0 and http_max_instances."
  }
}

variable "http_max_instances" {
  description = "Most instances of the HTTP service, so the most concurrent syntheses (one request per instance): the cost ceiling."
  type        = number
  default     = 10
  validation {
    condition     = var.http_max_instances >= 1 && var.http_max_instances <= 100
    error_message = "http_max_instances must be from 1 to 100."
  }
}

variable "event_min_instances" {
  description = "Instances of the event service kept warm. 0 is usual: events tolerate a cold start."
  type        = number
  default     = 0
  validation {
    condition     = var.event_min_instances >= 0 && var.event_min_instances <= var.event_max_instances
    error_message = "event_min_instances must be between 0 and event_max_instances."
  }
}

variable "event_max_instances" {
  description = "Most instances of the event service; Pub/Sub backs off and redelivers when all are busy."
  type        = number
  default     = 5
  validation {
    condition     = var.event_max_instances >= 1 && var.event_max_instances <= 100
    error_message = "event_max_instances must be from 1 to 100."
  }
}

variable "allow_unauthenticated" {
  description = "Make the HTTP service callable by anyone (allUsers). Off: callers need roles/run.invoker and an identity token."
  type        = bool
  default     = false
  validation {
    condition     = !var.allow_unauthenticated || length(var.http_invokers) == 0
    error_message = "http_invokers are pointless when allow_unauthenticated is true."
  }
}

variable "http_invokers" {
  description = "IAM members allowed to call the HTTP service (e.g. user:you@example.com, serviceAccount:app@p.iam.gserviceaccount.com)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.http_invokers : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):", m)) && m != "allUsers" && m != "allAuthenticatedUsers"])
    error_message = "http_invokers must be IAM members such as user:... or serviceAccount:...; public access is allow_unauthenticated's job."
  }
}

variable "output_prefix" {
  description = "Object prefix of the audio and manifests in the output bucket (TTS_OUTPUT_URI = gs://BUCKET/PREFIX)."
  type        = string
  default     = "audio"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.output_prefix))
    error_message = "output_prefix must be a relative object prefix without leading or trailing slashes."
  }
}

variable "input_prefix" {
  description = "Object prefix in the input bucket under which a dropped .txt or .json file becomes a synthesis (TTS_INPUT_PREFIX)."
  type        = string
  default     = "inputs/"
  validation {
    condition     = can(regex("^([A-Za-z0-9._-]+/)*$", var.input_prefix))
    error_message = "input_prefix must be empty or a relative prefix ending with a slash, such as inputs/."
  }
}

variable "output_retention_days" {
  description = "Days after which audio and manifests are deleted from the output bucket (they can always be synthesized again)."
  type        = number
  default     = 30
  validation {
    condition     = var.output_retention_days >= 1 && var.output_retention_days <= 3650
    error_message = "output_retention_days must be from 1 to 3650."
  }
}

variable "input_retention_days" {
  description = "Days after which dropped input files are deleted from the input bucket."
  type        = number
  default     = 7
  validation {
    condition     = var.input_retention_days >= 1 && var.input_retention_days <= 3650
    error_message = "input_retention_days must be from 1 to 3650."
  }
}

variable "max_delivery_attempts" {
  description = "Pub/Sub deliveries of a request message before it goes to the dead-letter topic."
  type        = number
  default     = 5
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be from 5 to 100 (Pub/Sub's limits)."
  }
}

variable "log_level" {
  description = "The function's log level (TTS_LOG_LEVEL)."
  type        = string
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "auth_mode" {
  description = "Who may call the HTTP service. iam: an identity token in Authorization (roles/run.invoker, http_invokers). api_key: an API key as X-API-Key or Authorization: Bearer (the openai SDK's api_key), checked by the function against hashes in Secret Manager; the service is public to the load balancer only (lb_domains required). both: IAM and a key, which must then come as X-API-Key (Authorization carries the identity token)."
  type        = string
  default     = "iam"
  validation {
    condition     = contains(["iam", "api_key", "both"], var.auth_mode) && (var.auth_mode != "api_key" || length(var.lb_domains) > 0)
    error_message = "auth_mode must be iam, api_key or both; api_key needs lb_domains (keyed callers come through the load balancer and its per-key limits)."
  }
}

variable "lb_domains" {
  description = "Domains of a global external Application Load Balancer in front of the HTTP service (managed certificate; Cloud Armor per-caller rate limits). Empty: no load balancer, the service's own URL. Set: the service accepts only internal and load-balancer traffic."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for d in var.lb_domains : can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", d))])
    error_message = "lb_domains must be fully qualified lowercase domain names (DNS must point them at the lb_ip output)."
  }
}

variable "rate_limit_per_key" {
  description = "Cloud Armor: requests one API key (X-API-Key, else the Authorization header) may make per rate_limit_interval_s; more are answered 429 before any instance starts. A synthesis takes seconds of an instance, so the default (60 a minute) already lets one caller keep several instances busy."
  type        = number
  default     = 60
  validation {
    condition     = var.rate_limit_per_key >= 1 && var.rate_limit_per_key <= 100000 && floor(var.rate_limit_per_key) == var.rate_limit_per_key
    error_message = "rate_limit_per_key must be a whole number from 1 to 100000."
  }
}

variable "rate_limit_per_ip" {
  description = "Cloud Armor: requests per rate_limit_interval_s from one client IP that sends no key header (the fallback key); 429 beyond."
  type        = number
  default     = 30
  validation {
    condition     = var.rate_limit_per_ip >= 1 && var.rate_limit_per_ip <= 100000 && floor(var.rate_limit_per_ip) == var.rate_limit_per_ip
    error_message = "rate_limit_per_ip must be a whole number from 1 to 100000."
  }
}

variable "rate_limit_interval_s" {
  description = "Cloud Armor's rate-limit window in seconds (one of the intervals it supports)."
  type        = number
  default     = 60
  validation {
    condition     = contains([10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600], var.rate_limit_interval_s)
    error_message = "rate_limit_interval_s must be one of 10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) the alert policies notify. Empty: alerts open incidents in the console only."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "notification_channels must be channel ids like projects/my-project/notificationChannels/123."
  }
}

variable "alert_error_ratio" {
  description = "Alert when more than this share of HTTP requests answer 5xx over 5 minutes."
  type        = number
  default     = 0.05
  validation {
    condition     = var.alert_error_ratio > 0 && var.alert_error_ratio < 1
    error_message = "alert_error_ratio must be between 0 and 1."
  }
}

variable "alert_latency_share" {
  description = "Alert when the HTTP p95 latency exceeds this share of http_timeout_s for 5 minutes (requests near the timeout are about to fail)."
  type        = number
  default     = 0.5
  validation {
    condition     = var.alert_latency_share > 0 && var.alert_latency_share <= 1
    error_message = "alert_latency_share must be in (0, 1]."
  }
}

variable "job_max_chars" {
  description = "Longest document a job accepts, in characters (TTS_JOB_MAX_CHARS; POST /jobs, and long messages or dropped files)."
  type        = number
  default     = 1000000
  validation {
    condition     = var.job_max_chars >= 1000 && var.job_max_chars <= 10000000
    error_message = "job_max_chars must be from 1000 to 10000000."
  }
}
