"""A c104 IEC 104 outstation for the stop-quality tests: good values and one the device itself
marks not topical.

Usage: c104_nt.py PORT

Station CA 1, untagged points (so the gateway stamps them and adds `gt`):
  100 M_SP_NA_1 on      101 M_ME_NC_1 12.5      102 M_ME_NC_1 3.5 with quality NT
Prints READY once listening; stdin EOF stops it, else it exits after 300 s.
"""
import select
import sys
import time

import c104


def main() -> int:
    port = int(sys.argv[1])
    server = c104.Server(ip="127.0.0.1", port=port, tick_rate_ms=50)
    station = server.add_station(common_address=1)
    sp = station.add_point(io_address=100, type=c104.Type.M_SP_NA_1)
    sp.info = c104.SingleInfo(on=True)
    good = station.add_point(io_address=101, type=c104.Type.M_ME_NC_1)
    good.info = c104.ShortInfo(actual=12.5)
    stale = station.add_point(io_address=102, type=c104.Type.M_ME_NC_1)
    stale.info = c104.ShortInfo(actual=3.5, quality=c104.Quality.NonTopical)
    server.start()
    deadline = time.monotonic() + 300
    while not server.is_running and time.monotonic() < deadline:
        time.sleep(0.01)
    print("READY", flush=True)
    while time.monotonic() < deadline:
        r, _, _ = select.select([sys.stdin], [], [], 0.2)
        if r and not sys.stdin.readline():
            break
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
