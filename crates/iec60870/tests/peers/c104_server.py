"""A c104 (lib60870) IEC 104 server for interop tests against our master.

Usage: c104_server.py PORT
Station CA 1 with: M_SP_NA_1 100 (on), M_ME_NC_1 200 (12.5), M_ME_TF_1 201 (-3.25 at
2024-02-29T13:45:12.345Z), M_IT_NA_1 300 (counter 1234),
C_SC_NA_1 400 (direct), C_SE_NC_1 500 (select-and-execute).
Prints READY when listening, one line per received command/clock sync, exits on stdin EOF
or after 60 s.
"""
import sys
import time
import select
import datetime

import c104


def main() -> int:
    port = int(sys.argv[1])
    server = c104.Server(ip="127.0.0.1", port=port, tick_rate_ms=50, select_timeout_ms=10000)
    station = server.add_station(common_address=1)
    sp = station.add_point(io_address=100, type=c104.Type.M_SP_NA_1)
    sp.value = True
    me = station.add_point(io_address=200, type=c104.Type.M_ME_NC_1)
    me.value = 12.5
    tf = station.add_point(io_address=201, type=c104.Type.M_ME_TF_1)
    # 2024-02-29T13:45:12.345Z
    tf.info = c104.ShortInfo(actual=-3.25, recorded_at=datetime.datetime(
        2024, 2, 29, 13, 45, 12, 345000, tzinfo=datetime.timezone.utc))
    it = station.add_point(io_address=300, type=c104.Type.M_IT_NA_1)
    it.info = c104.BinaryCounterInfo(counter=1234, sequence=c104.UInt5(0), quality=c104.BinaryCounterQuality())
    sc = station.add_point(io_address=400, type=c104.Type.C_SC_NA_1)
    se = station.add_point(io_address=500, type=c104.Type.C_SE_NC_1,
                           command_mode=c104.CommandMode.SELECT_AND_EXECUTE)

    def on_command(point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage) -> c104.ResponseState:
        print(f"CMD {point.io_address} {point.type} {point.value} select={message.is_select_command}", flush=True)
        return c104.ResponseState.SUCCESS

    sc.on_receive(callable=on_command)
    se.on_receive(callable=on_command)

    def on_clock_sync(server: c104.Server, ip: str, date_time: datetime.datetime) -> c104.ResponseState:
        print(f"CLOCK {date_time.isoformat()}", flush=True)
        return c104.ResponseState.SUCCESS

    server.on_clock_sync(callable=on_clock_sync)
    server.start()
    deadline = time.monotonic() + 60
    while not server.is_running and time.monotonic() < deadline:
        time.sleep(0.02)
    print("READY", flush=True)
    # run until the test closes stdin (or 60 s)
    while time.monotonic() < deadline:
        r, _, _ = select.select([sys.stdin], [], [], 0.2)
        if r and not sys.stdin.readline():
            break
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
