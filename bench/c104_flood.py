#!/usr/bin/env python3
"""c104 2.2.1 (lib60870) IEC 104 server for bench/run: POINTS M_ME_TF_1 points at CA 1, IOA 1..POINTS.

Usage: c104_flood.py PORT POINTS SECONDS
Waits (at most 30 s) for a client and 2 s for its general interrogation, then sends every point
spontaneously, round after round, for SECONDS; prints `SENT <transmits accepted> <refused> <secs>`.
lib60870 queues what it cannot send yet (and drops the oldest when its queue is full), so what
arrives is counted on the receiving side.
"""
import datetime
import sys
import time

import c104


def main() -> int:
    port, points, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    server = c104.Server(ip="127.0.0.1", port=port, tick_rate_ms=50)
    station = server.add_station(common_address=1)
    now = datetime.datetime.now(datetime.timezone.utc)
    pts = []
    for ioa in range(1, points + 1):
        p = station.add_point(io_address=ioa, type=c104.Type.M_ME_TF_1)
        p.info = c104.ShortInfo(actual=0.0, recorded_at=now)
        pts.append(p)
    server.start()
    deadline = time.monotonic() + 30
    while server.active_connection_count < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.active_connection_count < 1:
        print("no client", flush=True)
        return 1
    print("CONNECTED", flush=True)
    time.sleep(2)
    ok = refused = 0
    v = 1.0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        now = datetime.datetime.now(datetime.timezone.utc)
        for p in pts:
            p.info = c104.ShortInfo(actual=v, recorded_at=now)
            if p.transmit(cause=c104.Cot.SPONTANEOUS):
                ok += 1
            else:
                refused += 1
        v += 1.0
    print(f"SENT {ok} {refused} {time.monotonic() - t0:.2f}", flush=True)
    time.sleep(1)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
