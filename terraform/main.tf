# serverless-tts on Google Cloud: two Cloud Run services from one image and one definition
# (run.tf), an output bucket and an input drop bucket (storage.tf), a Pub/Sub request path with
# dead-lettering (pubsub.tf), a file-drop Eventarc trigger (eventarc.tf), least-privilege
# identities (iam.tf).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Must match the image: function.config.HEALTH_ROUTE and the Dockerfile's PORT/EXPOSE (tests check).
  health_route = "/healthz"
  port         = 8080

  # One entry per Cloud Run service; everything else about them is shared (run.tf).
  services = {
    http = {
      timeout_s     = var.http_timeout_s
      min_instances = var.http_min_instances
      max_instances = var.http_max_instances
      # Reachable from the internet, but only with an identity token (IAM), unless allow_unauthenticated;
      # behind the load balancer (lb.tf), only through it (and its Cloud Armor limits).
      ingress = local.load_balancer ? "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" : "INGRESS_TRAFFIC_ALL"
      # functions-framework: which function to serve, and gunicorn's worker timeout; the API keys
      # (auth.tf), which only this service checks.
      env = {
        FUNCTION_TARGET           = "synthesize"
        CLOUD_RUN_TIMEOUT_SECONDS = tostring(var.http_timeout_s)
        TTS_API_KEYS_FILE         = local.api_keys_file
        TTS_API_KEY_BEARER        = local.api_key_bearer
      }
    }
    event = {
      timeout_s     = var.event_timeout_s
      min_instances = var.event_min_instances
      max_instances = var.event_max_instances
      # Only Pub/Sub push and Eventarc (same project) call it.
      ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
      env = {
        FUNCTION_TARGET           = "synthesize_event"
        CLOUD_RUN_TIMEOUT_SECONDS = tostring(var.event_timeout_s)
      }
    }
  }

  # The function's settings (function.config.Settings, prefix TTS_), the same on both services:
  # each service knows both timeouts, and each equals the platform timeout that enforces it.
  function_env = {
    TTS_ENGINES           = join(",", var.engines)
    TTS_OUTPUT_URI        = "gs://${google_storage_bucket.this["output"].name}/${var.output_prefix}"
    TTS_INPUT_PREFIX      = var.input_prefix
    TTS_INPUT_BUCKET      = google_storage_bucket.this["input"].name
    TTS_REQUEST_TIMEOUT_S = tostring(var.http_timeout_s)
    TTS_EVENT_TIMEOUT_S   = tostring(var.event_timeout_s)
    TTS_THREADS           = tostring(var.cpu)
    # What the page (GET /) prices a request at: this instance's vCPUs. Its memory is
    # TTS_INSTANCE_MEMORY_MIB, default 3072 (the default engines' memory): not set from here.
    TTS_INSTANCE_VCPU = tostring(var.cpu)
    TTS_LOG_LEVEL     = var.log_level
    TTS_GCP_PROJECT   = var.project_id
    # The push subscription's last attempt: recorded as a failed manifest instead of dead-lettered.
    TTS_MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
  }

  # Memory each engine adds to an instance, in MiB: its model, loaded on first use and kept for the
  # instance's life (so an instance that served every engine holds every model), plus the largest
  # request it accepts. Peak RSS measured on a 2 vCPU AMD EPYC, rounded up to whole GiB:
  # - hibari: ~0.3 GiB serving short texts, 1.8 GB for the longest event text its 0.005 s/char
  #   budget fits in 540 s (86 000 characters, 95 minutes of audio held whole before encoding;
  #   README "How long a text fits") -> 2 GiB;
  # - kokoro: 0.45 GiB once loaded, 0.6-0.7 GiB after 900 Chinese / 2700 English characters; its
  #   0.15 s/char budget caps an event at ~2900 characters, whose audio is under 100 MB -> 1 GiB;
  # - cosyvoice: 1.8-2.0 GiB fp32, 1.2-1.4 GiB int8, 1.5 GiB fast at 150-300 speech tokens
  #   (docs/cosyvoice.md "Speed and memory on CPU"), growing with a piece's length; at most a few
  #   hundred characters per request -> 4 GiB.
  # Added up, each engine's request headroom is counted although one request runs at a time: that
  # slack covers the interpreter and the libraries each engine imports.
  engine_memory_mib = {
    hibari    = 2048
    kokoro    = 1024
    cosyvoice = 4096
  }

  # Cloud Run's memory range for each vCPU count, second generation (512 MiB at least; more than
  # 4 GiB needs 2 vCPUs, more than 8 needs 4, more than 16 needs 6, more than 24 needs 8; 4 vCPUs
  # need 2 GiB, 6 or 8 need 4): https://cloud.google.com/run/docs/configuring/services/cpu and
  # https://cloud.google.com/run/docs/configuring/services/memory-limits
  cpu_memory_mib = {
    "1" = { min = 512, max = 4096 }
    "2" = { min = 512, max = 8192 }
    "4" = { min = 2048, max = 16384 }
    "6" = { min = 4096, max = 24576 }
    "8" = { min = 4096, max = 32768 }
  }

  # var.memory when set, else the engines' sum raised to the least the vCPUs allow; run.tf checks
  # the result against Cloud Run's range before anything is applied.
  memory_mib = (var.memory == null
    ? max(sum([for e in var.engines : local.engine_memory_mib[e]]), local.cpu_memory_mib[tostring(var.cpu)].min)
  : tonumber(regex("^[0-9]+", var.memory)) * (endswith(var.memory, "Gi") ? 1024 : 1))
  memory = "${local.memory_mib}Mi"

  # Native thread pools sized to the instance's vCPUs (the container sees the host's cores).
  thread_env = {
    OMP_NUM_THREADS        = tostring(var.cpu)
    MKL_NUM_THREADS        = tostring(var.cpu)
    OPENBLAS_NUM_THREADS   = tostring(var.cpu)
    NUMEXPR_NUM_THREADS    = tostring(var.cpu)
    VECLIB_MAXIMUM_THREADS = tostring(var.cpu)
  }

  apis = toset([
    "run.googleapis.com",
    "pubsub.googleapis.com",
    "eventarc.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    # signBlob for V4 signed URLs from the metadata-server credentials.
    "iamcredentials.googleapis.com",
    # API keys (auth.tf), the load balancer and Cloud Armor (lb.tf), metrics and alerts (monitoring.tf).
    "secretmanager.googleapis.com",
    "compute.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
  ])
}

resource "google_project_service" "this" {
  for_each = local.apis
  project  = var.project_id
  service  = each.value
  # Other workloads in the project may use these APIs too.
  disable_on_destroy = false
}
