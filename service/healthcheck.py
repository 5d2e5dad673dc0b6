"""The Docker image's HEALTHCHECK: `python3 -m service.healthcheck`, exit status 0 when healthy.

Healthy: `duiyi serve`'s `/healthz` answers 200 on DUIYI_HOST:DUIYI_PORT, or, where
DUIYI_METRICS_PORT is set, a `duiyi worker`'s metrics answer 200 on that port. So one image's check
works for `serve` on any port and for a worker given DUIYI_METRICS_PORT; a worker without it has
nothing to ask (no HTTP at all), and its container needs `--no-healthcheck`. The check cannot see
the command's flags: a worker's metrics port must come from DUIYI_METRICS_PORT, not --metrics-port.

The standard library only: the check runs every 30 s, and importing duiyi's CLI (torch) takes
seconds of CPU.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

# Each address gets this long; Docker's --timeout for the whole check is 5 s.
TIMEOUT_S = 2.0


def _host(environ: Mapping[str, str]) -> str:
    """Where to reach a process listening on DUIYI_HOST: loopback for the wildcard addresses."""
    host = environ.get("DUIYI_HOST", "").strip()
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def urls(environ: Mapping[str, str]) -> list[str]:
    """What to ask, in order: serve's /healthz, then a worker's metrics where a port is set."""
    host = _host(environ)
    found = []
    port = environ.get("DUIYI_PORT", "").strip() or "8000"
    if port != "0":  # 0: any free port, which only serve's log names
        found.append(f"http://{host}:{port}/healthz")
    metrics = environ.get("DUIYI_METRICS_PORT", "").strip()
    if metrics not in ("", "0"):
        found.append(f"http://{host}:{metrics}/metrics")
    return found


def check(environ: Mapping[str, str]) -> tuple[bool, list[str]]:
    """Whether one of `urls` answers 200, and what each one asked said."""
    said = []
    for url in urls(environ):
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
                if answer.status == 200:
                    return True, [f"{url}: 200"]
                said.append(f"{url}: {answer.status}")
        except urllib.error.HTTPError as exc:
            said.append(f"{url}: {exc.code}")
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timed out, a bad port
            said.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
    return False, said or ["nothing to check: DUIYI_PORT is 0 and DUIYI_METRICS_PORT unset"]


def main() -> int:
    healthy, said = check(os.environ)
    print(("healthy: " if healthy else "unhealthy: ") + "; ".join(said))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
