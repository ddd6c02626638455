#!/usr/bin/env python3
"""c104 (lib60870) outstation for tests/soak/soak-40mb.sh: the measured values of the example
config's `rtu1` (CA 1; M_ME_TF_1 at IOA 200-202 and 210-212, M_ME_NC_1 at 220-221), one
spontaneous transmit every 1/RATE s, each with a new value, until SIGTERM.

Usage: outstation.py PORT RATE
Prints `CONNECTED` when the master is there and `SENT <accepted> <refused>` on SIGTERM.
"""
import datetime
import signal
import sys
import time

import c104

POINTS = [(ioa, c104.Type.M_ME_TF_1) for ioa in (200, 201, 202, 210, 211, 212)] + [
    (ioa, c104.Type.M_ME_NC_1) for ioa in (220, 221)
]


def main() -> int:
    port, rate = int(sys.argv[1]), float(sys.argv[2])
    server = c104.Server(ip="127.0.0.1", port=port, tick_rate_ms=50)
    station = server.add_station(common_address=1)
    now = datetime.datetime.now(datetime.timezone.utc)
    pts = []
    for ioa, kind in POINTS:
        p = station.add_point(io_address=ioa, type=kind)
        if kind == c104.Type.M_ME_TF_1:
            p.info = c104.ShortInfo(actual=0.0, recorded_at=now)
        pts.append((p, kind))
    server.start()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while server.active_connection_count < 1 and not stop:
        time.sleep(0.05)
    print("CONNECTED", flush=True)
    ok = refused = 0
    n = 0
    t0 = time.monotonic()
    while not stop:
        p, kind = pts[n % len(pts)]
        v = float(n % 100000) / 10.0
        if kind == c104.Type.M_ME_TF_1:
            p.info = c104.ShortInfo(actual=v, recorded_at=datetime.datetime.now(datetime.timezone.utc))
        else:
            p.value = v
        if p.transmit(cause=c104.Cot.SPONTANEOUS):
            ok += 1
        else:
            refused += 1
        n += 1
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(f"SENT {ok} {refused}", flush=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
