"""Cloud Run's published list prices and the cost of a simulated run.

Request-based billing ("CPU only allocated during request processing"), Tier 1 regions, from
https://cloud.google.com/run/pricing (stored copy read 2026-11-26; the same figures as
docs/kokoro.md's cost table): $0.000024 per vCPU-second, $0.0000025 per GiB-second, $0.40 per
million requests, billable time rounded up to 100 ms. The free tier (180,000 vCPU-s, 360,000 GiB-s
and 2 million requests a month) is left out: at the loads sized here it is used up in hours.
Idle ``min_instances`` are billed at a lower idle rate that this model does not price.
"""

from __future__ import annotations

from dataclasses import dataclass

VCPU_SECOND = 0.000024
GIB_SECOND = 0.0000025
PER_REQUEST = 0.40 / 1_000_000

# Managed TTS list prices, $ per million characters, with where they were read (see
# docs/performance.md "Cost per million characters" for the caveats).
MANAGED_TTS = {
    "Google Cloud TTS Standard": 4.0,
    "Google Cloud TTS WaveNet": 16.0,
    "Amazon Polly Standard": 4.0,
    "Amazon Polly Neural": 16.0,
    "OpenAI tts-1": 15.0,
}


@dataclass(frozen=True)
class Cost:
    dollars: float
    dollars_per_hour: float
    per_million_chars: float | None  # None when nothing was served


def cost(
    billed_instance_s: float, requests: int, vcpu: int, memory_gib: float, seconds: float, chars: int
) -> Cost:
    dollars = billed_instance_s * (vcpu * VCPU_SECOND + memory_gib * GIB_SECOND) + requests * PER_REQUEST
    return Cost(
        dollars=dollars,
        dollars_per_hour=dollars * 3600 / seconds,
        per_million_chars=dollars / chars * 1_000_000 if chars else None,
    )
