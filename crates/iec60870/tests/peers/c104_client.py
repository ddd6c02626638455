"""A c104 (lib60870) IEC 104 client for interop tests against our outstation.

Usage: c104_client.py PORT
Expects station CA 1 with M_SP_NA_1 100 (on), M_ME_NC_1 200 (12.5), M_IT_NA_1 300 (1234),
a direct C_SC_NA_1 400 and a select-and-execute C_SE_NC_1 500. Prints GI_DONE after the
interrogation and then waits for a spontaneous M_ME_NC_1 200 = 99.5 and a spontaneous M_ME_TF_1 201 = -3.25 at
2024-02-29T13:45:12.345Z. Prints "RESULT ok" and
exits 0 when every step passed, else prints "FAIL ..." and exits 1. Every wait is bounded.
"""
import datetime
import os
import sys
import time

import c104

RAW = []


def on_raw(connection: c104.Connection, data: bytes) -> None:
    RAW.append(bytes(data))


def asdus(type_id, cot):
    """Received I frames with this type and cause."""
    return [d for d in RAW if len(d) > 8 and d[2] & 1 == 0 and d[6] == type_id and d[8] & 0x3F == cot]


def positive(type_id, cot):
    """Received I frames with this type and cause and the P/N bit clear."""
    return [d for d in asdus(type_id, cot) if not d[8] & 0x40]


def wait_for(pred, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            print(f"PASS {what}", flush=True)
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"PASS {what}", flush=True)


def main() -> int:
    port = int(sys.argv[1])
    if os.environ.get("C104_DEBUG"):
        c104.set_debug_mode(c104.Debug.Client | c104.Debug.Connection)
    client = c104.Client(tick_rate_ms=50, command_timeout_ms=2000)
    conn = client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
    conn.on_receive_raw(callable=on_raw)
    station = conn.add_station(common_address=1)
    sp = station.add_point(io_address=100, type=c104.Type.M_SP_NA_1)
    me = station.add_point(io_address=200, type=c104.Type.M_ME_NC_1)
    tf = station.add_point(io_address=201, type=c104.Type.M_ME_TF_1)
    it = station.add_point(io_address=300, type=c104.Type.M_IT_NA_1)
    sc = station.add_point(io_address=400, type=c104.Type.C_SC_NA_1)
    se = station.add_point(io_address=500, type=c104.Type.C_SE_NC_1,
                           command_mode=c104.CommandMode.SELECT_AND_EXECUTE)
    client.start()
    try:
        # c104 2.2.1 sometimes leaves the connection OPEN_MUTED (its scheduled unmute task
        # never runs); send STARTDT act ourselves then
        for _attempt in range(3):
            try:
                wait_for(lambda: conn.state == c104.ConnectionState.OPEN, "connection OPEN", 3)
                break
            except AssertionError:
                print(f"RETRY unmute (state {conn.state})", flush=True)
                conn.unmute()
        check(conn.state == c104.ConnectionState.OPEN, "connection OPEN")
        conn.interrogation(common_address=1, cause=c104.Cot.ACTIVATION,
                           qualifier=c104.Qoi.STATION, wait_for_response=False)
        wait_for(lambda: positive(100, 7), "interrogation ACT_CON")
        wait_for(lambda: asdus(100, 10), "interrogation ACT_TERM")
        wait_for(lambda: len(asdus(1, 20)) == 1 and len(asdus(13, 20)) == 1, "GI points with COT 20")
        wait_for(lambda: sp.value is True or sp.value == 1, "single point value")
        wait_for(lambda: abs(me.value - 12.5) < 1e-6, "float value 12.5")
        check(not asdus(15, 20), "no integrated totals in the GI answer")
        print("GI_DONE", flush=True)
        wait_for(lambda: abs(me.value - 99.5) < 1e-6, "spontaneous update")
        wait_for(lambda: asdus(13, 3), "spontaneous COT 3")
        wait_for(lambda: abs(tf.value + 3.25) < 1e-6, "time-tagged spontaneous update")
        expected = datetime.datetime(2024, 2, 29, 13, 45, 12, 345000, tzinfo=datetime.timezone.utc)
        got = tf.recorded_at
        if got is not None and got.tzinfo is None:
            got = got.replace(tzinfo=datetime.timezone.utc)
        check(got == expected, f"CP56 time tag {tf.recorded_at!r}")

        conn.counter_interrogation(common_address=1, cause=c104.Cot.ACTIVATION,
                                   qualifier=c104.Rqt.GENERAL, freeze=c104.Frz.READ,
                                   wait_for_response=False)
        wait_for(lambda: positive(101, 7), "counter interrogation ACT_CON")
        wait_for(lambda: asdus(15, 37), "integrated totals with COT 37")
        wait_for(lambda: asdus(101, 10), "counter interrogation ACT_TERM")
        wait_for(lambda: it.value == 1234, "counter value 1234")

        conn.clock_sync(common_address=1, wait_for_response=False)
        wait_for(lambda: positive(103, 7), "clock sync ACT_CON")

        # transmit() blocks for the confirmation, but c104 2.2.1 can miss a confirmation that
        # arrives before it starts waiting (its debug log shows "set_command_success ...
        # found: 1" before "await_command_success ... Timeout"); the wire is the truth.
        sc.value = True
        sc.transmit(cause=c104.Cot.ACTIVATION)
        wait_for(lambda: positive(45, 7), "single command ACT_CON")

        se.value = 42.5
        for _attempt in range(3):
            se.transmit(cause=c104.Cot.ACTIVATION)
            try:
                wait_for(lambda: [d for d in positive(50, 7) if not d[19] & 0x80],
                         "execute ACT_CON", 2)
                break
            except AssertionError:
                print("RETRY select-before-operate", flush=True)
        wait_for(lambda: asdus(50, 10), "set-point ACT_TERM")
        cons = positive(50, 7)
        check(len(cons) >= 2 and cons[-2][19] & 0x80 and not cons[-1][19] & 0x80,
              "select ACT_CON then execute ACT_CON")
    except AssertionError as e:
        print(f"FAIL {e}", flush=True)
        for d in RAW:
            print(f"RAW {d.hex(' ')}", flush=True)
        client.stop()
        return 1
    client.stop()
    print("RESULT ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
