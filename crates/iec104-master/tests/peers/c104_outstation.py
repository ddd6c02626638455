"""A c104 2.2.1 (lib60870) IEC 104 outstation for the iec104-master end-to-end tests.

Usage: c104_outstation.py PORT [COMMAND_LOG] [--tx-log] [--tls-... (see crates/testrig/peers/c104_tls.py)]

Station CA 1, every monitor point time-tagged at T0 = 2025-01-02T03:04:05.678Z:
  100 M_SP_TB_1 on                 101 M_DP_TB_1 ON (2)
  200 M_ME_TE_1 -1234 (substituted)  201 M_ME_TF_1 12.5
  300 M_IT_TB_1 counter 4321 (only via counter interrogation)
Commands:
  400 C_SC_NA_1 direct, accepted     401 C_DC_NA_1 direct, REJECTED by the callback
  402 C_SE_NC_1 select-and-execute, accepted
Each received command is printed and appended to COMMAND_LOG as
  `CMD <ioa> <type> <value> select=<bool>`; clock syncs as `CLOCK <iso time>`.
Stdin lines: `float <value>` sets 201 to value with the current time as its time tag and
sends it spontaneously (prints `SENT <unix ms>`); `count N PERIOD_MS` sends 202 M_ME_TF_1
with the values 1..N spontaneously, one every PERIOD_MS, then prints
`COUNTED <N> failed=<values>` (the values c104 refused to transmit, comma separated, `-` for
none: it refuses while no connection is active); EOF stops the server. Exits after 300 s.
`--tx-log` prints every APDU sent as `TX <hex>` (the wire itself).
"""
import datetime
import os
import select
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../testrig/peers"))
import c104_tls  # noqa: E402 (before c104)

TLS, ARGS = c104_tls.from_argv(sys.argv[1:], client=False)
TX_LOG = "--tx-log" in ARGS
ARGS = [a for a in ARGS if a != "--tx-log"]
import c104  # noqa: E402


def on_tx(server: c104.Server, data: bytes) -> None:
    # one write(2) per line: c104 calls back from its own threads
    os.write(1, ("TX " + bytes(data).hex() + "\n").encode())

T0 = datetime.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)


def main() -> int:
    port = int(ARGS[0])
    log_path = ARGS[1] if len(ARGS) > 1 else None
    tls = {"transport_security": TLS} if TLS is not None else {}
    server = c104.Server(ip="127.0.0.1", port=port, tick_rate_ms=50, select_timeout_ms=10000, **tls)
    station = server.add_station(common_address=1)

    sp = station.add_point(io_address=100, type=c104.Type.M_SP_TB_1)
    sp.info = c104.SingleInfo(on=True, recorded_at=T0)
    dp = station.add_point(io_address=101, type=c104.Type.M_DP_TB_1)
    dp.info = c104.DoubleInfo(state=c104.Double.ON, recorded_at=T0)
    sc = station.add_point(io_address=200, type=c104.Type.M_ME_TE_1)
    sc.info = c104.ScaledInfo(actual=c104.Int16(-1234), quality=c104.Quality.Substituted, recorded_at=T0)
    fl = station.add_point(io_address=201, type=c104.Type.M_ME_TF_1)
    fl.info = c104.ShortInfo(actual=12.5, recorded_at=T0)
    counted = station.add_point(io_address=202, type=c104.Type.M_ME_TF_1)
    counted.info = c104.ShortInfo(actual=0.0, recorded_at=T0)
    it = station.add_point(io_address=300, type=c104.Type.M_IT_TB_1)
    it.info = c104.BinaryCounterInfo(counter=4321, sequence=c104.UInt5(0),
                                     quality=c104.BinaryCounterQuality(), recorded_at=T0)

    def record(line: str) -> None:
        print(line, flush=True)
        if log_path:
            with open(log_path, "a") as f:
                f.write(line + "\n")

    def accept(point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage) -> c104.ResponseState:
        record(f"CMD {point.io_address} {point.type} {point.value} select={message.is_select_command}")
        return c104.ResponseState.SUCCESS

    def reject(point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage) -> c104.ResponseState:
        record(f"CMD {point.io_address} {point.type} {point.value} select={message.is_select_command} REJECTED")
        return c104.ResponseState.FAILURE

    station.add_point(io_address=400, type=c104.Type.C_SC_NA_1).on_receive(callable=accept)
    station.add_point(io_address=401, type=c104.Type.C_DC_NA_1).on_receive(callable=reject)
    station.add_point(io_address=402, type=c104.Type.C_SE_NC_1,
                      command_mode=c104.CommandMode.SELECT_AND_EXECUTE).on_receive(callable=accept)

    def on_clock_sync(server: c104.Server, ip: str, date_time: datetime.datetime) -> c104.ResponseState:
        record(f"CLOCK {date_time.isoformat()}")
        return c104.ResponseState.SUCCESS

    server.on_clock_sync(callable=on_clock_sync)
    if TX_LOG:
        server.on_send_raw(callable=on_tx)
    server.start()
    deadline = time.monotonic() + 300
    while not server.is_running and time.monotonic() < deadline:
        time.sleep(0.01)
    print("READY", flush=True)
    while time.monotonic() < deadline:
        r, _, _ = select.select([sys.stdin], [], [], 0.2)
        if not r:
            continue
        line = sys.stdin.readline()
        if not line:
            break
        parts = line.split()
        if len(parts) == 2 and parts[0] == "float":
            now = datetime.datetime.now(datetime.timezone.utc)
            fl.info = c104.ShortInfo(actual=float(parts[1]), recorded_at=now)
            fl.transmit(cause=c104.Cot.SPONTANEOUS)
            print(f"SENT {int(now.timestamp() * 1000)}", flush=True)
        elif len(parts) == 3 and parts[0] == "count":
            n, period = int(parts[1]), float(parts[2]) / 1000
            failed = []
            start = time.monotonic()
            for i in range(1, n + 1):
                counted.info = c104.ShortInfo(actual=float(i),
                                              recorded_at=datetime.datetime.now(datetime.timezone.utc))
                if not counted.transmit(cause=c104.Cot.SPONTANEOUS):
                    failed.append(str(i))
                time.sleep(max(0.0, start + i * period - time.monotonic()))
            print(f"COUNTED {n} failed={','.join(failed) or '-'}", flush=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
