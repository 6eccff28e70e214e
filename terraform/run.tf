# Both services from one definition: same image, same resources, same function settings; they
# differ in functions-framework target, timeout, instance limits and ingress (local.services).
resource "google_cloud_run_v2_service" "this" {
  for_each = local.services

  name                = "${var.name_prefix}-${each.key}"
  project             = var.project_id
  location            = var.region
  ingress             = each.value.ingress
  deletion_protection = true
  # api_key mode: the function checks every caller's key, so Cloud Run's IAM check is off (the
  # load balancer cannot mint identity tokens); ingress keeps all but the load balancer out.
  invoker_iam_disabled = each.key == "http" && var.auth_mode == "api_key"

  template {
    service_account = google_service_account.this["runtime"].email
    timeout         = "${each.value.timeout_s}s"
    # One request per instance: synthesis saturates the instance's CPUs, so a second concurrent
    # request would only make both slower (and risk both timing out). Load spreads by scaling out.
    max_instance_request_concurrency = 1
    # Second generation: full Linux and faster sustained CPU for a compute-bound workload.
    execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      min_instance_count = each.value.min_instances
      max_instance_count = each.value.max_instances
    }

    # The hashed API keys (auth.tf), read by the function from local.api_keys_file; "latest" is
    # read again on each file read, so a new secret version rotates keys without a redeploy.
    dynamic "volumes" {
      for_each = each.key == "http" && local.api_keys_enabled ? ["api-keys"] : []
      content {
        name = volumes.value
        secret {
          secret = google_secret_manager_secret.api_keys[0].secret_id
          items {
            version = "latest"
            path    = local.api_keys_filename
          }
        }
      }
    }

    containers {
      image = var.image

      ports {
        container_port = local.port
      }

      resources {
        limits = {
          cpu    = tostring(var.cpu)
          memory = local.memory
        }
        # CPU only while a request runs (request-based billing): nothing runs in the background.
        cpu_idle = true
        # More CPU while the instance starts: imports and the first model load are a cold start.
        startup_cpu_boost = true
      }

      dynamic "volume_mounts" {
        for_each = each.key == "http" && local.api_keys_enabled ? ["api-keys"] : []
        content {
          name       = volume_mounts.value
          mount_path = local.api_keys_dir
        }
      }

      dynamic "env" {
        # local.jobs_env (pubsub.tf): both services publish job parts and notifications.
        for_each = merge(local.function_env, local.jobs_env, local.thread_env, each.value.env)
        content {
          name  = env.key
          value = env.value
        }
      }

      # The health route never loads the model, so the instance is ready as soon as it listens.
      # No liveness probe: the single worker thread is busy for the whole synthesis, so a probe
      # would queue behind it, fail, and restart an instance in the middle of a request.
      startup_probe {
        http_get {
          path = local.health_route
          port = local.port
        }
        initial_delay_seconds = 0
        timeout_seconds       = 2
        period_seconds        = 3
        failure_threshold     = 20
      }
    }
  }

  lifecycle {
    # Cloud Run refuses a memory outside the vCPUs' range only when the revision is deployed; this
    # says so at plan, with the way out.
    precondition {
      condition     = local.memory_mib >= local.cpu_memory_mib[tostring(var.cpu)].min && local.memory_mib <= local.cpu_memory_mib[tostring(var.cpu)].max
      error_message = "memory ${local.memory} is outside what Cloud Run allows with cpu = ${var.cpu} (${local.cpu_memory_mib[tostring(var.cpu)].min}-${local.cpu_memory_mib[tostring(var.cpu)].max} MiB): raise cpu (more than 4 GiB needs 2, more than 8 GiB 4) or set memory."
    }
  }

  depends_on = [google_project_service.this, google_secret_manager_secret_iam_member.runtime_reads_api_keys]
}
