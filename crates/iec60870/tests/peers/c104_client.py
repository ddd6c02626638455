"""A c104 (lib60870) IEC 104 client for interop tests against our outstation.

Usage: c104_client.py PORT
Expects station CA 1 with M_SP_NA_1 100 (on), M_ME_NC_1 200 (12.5), M_IT_NA_1 300 (1234),
a direct C_SC_NA_1 400 and a select-and-execute C_SE_NC_1 500. Prints GI_DONE after the
interrogation and then waits for a spontaneous M_ME_NC_1 200 = 99.5. Prints "RESULT ok" and
exits 0 when every step passed, else prints "FAIL ..." and exits 1. Every wait is bounded.
"""
import sys
import time

import c104

RAW = []


def on_raw(connection: c104.Connection, data: bytes) -> None:
    RAW.append(bytes(data))


def asdus(type_id, cot):
    """Received I frames with this type and cause."""
    return [d for d in RAW if len(d) > 8 and d[2] & 1 == 0 and d[6] == type_id and d[8] & 0x3F == cot]


def wait_for(pred, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"PASS {what}", flush=True)


def main() -> int:
    port = int(sys.argv[1])
    client = c104.Client(tick_rate_ms=50, command_timeout_ms=5000)
    conn = client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
    conn.on_receive_raw(callable=on_raw)
    station = conn.add_station(common_address=1)
    sp = station.add_point(io_address=100, type=c104.Type.M_SP_NA_1)
    me = station.add_point(io_address=200, type=c104.Type.M_ME_NC_1)
    it = station.add_point(io_address=300, type=c104.Type.M_IT_NA_1)
    sc = station.add_point(io_address=400, type=c104.Type.C_SC_NA_1)
    se = station.add_point(io_address=500, type=c104.Type.C_SE_NC_1,
                           command_mode=c104.CommandMode.SELECT_AND_EXECUTE)
    client.start()
    try:
        wait_for(lambda: conn.state == c104.ConnectionState.OPEN, "connection OPEN", 10)
        check(conn.interrogation(common_address=1, cause=c104.Cot.ACTIVATION,
                                 qualifier=c104.Qoi.STATION), "interrogation ACT_CON")
        wait_for(lambda: asdus(100, 10), "interrogation ACT_TERM")
        check(len(asdus(1, 20)) == 1 and len(asdus(13, 20)) == 1, "GI points with COT 20")
        check(sp.value is True or sp.value == 1, f"single point value {sp.value}")
        check(abs(me.value - 12.5) < 1e-6, f"float value {me.value}")
        check(not asdus(15, 20), "no integrated totals in the GI answer")
        print("GI_DONE", flush=True)
        wait_for(lambda: abs(me.value - 99.5) < 1e-6, "spontaneous update")
        check(len(asdus(13, 3)) >= 1, "spontaneous COT 3")

        check(conn.counter_interrogation(common_address=1, cause=c104.Cot.ACTIVATION,
                                         qualifier=c104.Rqt.GENERAL, freeze=c104.Frz.READ),
              "counter interrogation ACT_CON")
        wait_for(lambda: asdus(15, 37), "integrated totals with COT 37")
        wait_for(lambda: asdus(101, 10), "counter interrogation ACT_TERM")
        check(it.value == 1234, f"counter value {it.value}")

        check(conn.clock_sync(common_address=1), "clock sync ACT_CON")
        check(asdus(103, 7) and not asdus(103, 7)[-1][8] & 0x40, "clock sync positive")

        sc.value = True
        check(sc.transmit(cause=c104.Cot.ACTIVATION), "single command ACT_CON")

        se.value = 42.5
        check(se.transmit(cause=c104.Cot.ACTIVATION), "select-before-operate set-point ACT_CON")
        wait_for(lambda: asdus(50, 10), "set-point ACT_TERM")
        cons = asdus(50, 7)
        check(len(cons) == 2 and cons[0][19] & 0x80 and not cons[1][19] & 0x80,
              "select ACT_CON then execute ACT_CON")
    except AssertionError as e:
        print(f"FAIL {e}", flush=True)
        client.stop()
        return 1
    client.stop()
    print("RESULT ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
