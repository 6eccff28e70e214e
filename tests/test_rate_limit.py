"""The fleet's HAProxy limits each caller (as Cloud Armor does in front of Cloud Run, terraform/lb.tf):
a bounded burst per API key, end to end on this machine, answered 429 with Retry-After beyond."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import requests

from loadtest.deployments import RateLimit, start_fleet

LIMIT = RateLimit(requests=5, window_s=10)
BURST = 12


def test_each_key_gets_its_own_budget_and_429_with_retry_after_beyond(tmp_path: Path, capsys) -> None:
    assert shutil.which("haproxy"), "haproxy missing: apt-get update && apt-get install -y haproxy"
    with start_fleet(1, tmp_path / "out", tmp_path / "logs", None, 4, 5.0, per_caller=LIMIT) as fleet:
        callers = {
            "key a (X-API-Key)": {"X-API-Key": "tts_aaaaaaaa_" + "a" * 43},
            "key b (X-API-Key)": {"X-API-Key": "tts_bbbbbbbb_" + "b" * 43},
            "key c (Bearer)": {"Authorization": "Bearer tts_cccccccc_" + "c" * 43},
        }
        counts: dict[str, Counter] = {name: Counter() for name in callers}
        for _ in range(BURST):  # interleaved: one caller's burst must not spend another's budget
            for name, headers in callers.items():
                response = requests.get(f"{fleet.url}/voices", headers=headers, timeout=30)
                counts[name][response.status_code] += 1
                if response.status_code == 429:
                    assert int(response.headers["Retry-After"]) == LIMIT.window_s
                    assert response.json()["error"]["code"] == "rate_limited"
    with capsys.disabled():
        for name, count in counts.items():
            print(f"\n{name}: {BURST} sent, {count[200]} accepted, {count[429]} refused (429)", end="")
        print()
    for count in counts.values():
        assert count == Counter({200: LIMIT.requests, 429: BURST - LIMIT.requests})
