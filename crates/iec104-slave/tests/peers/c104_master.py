"""A c104 (lib60870) IEC 104 client: the SCADA master of the iec104-slave tests.

Usage: c104_master.py [--tls-... (see crates/testrig/peers/c104_tls.py)]

Reads one command per line on stdin and answers on stdout; every frame received from the
slave is printed as `RX <hex>` (the whole APDU), so the test checks the wire itself (c104
2.2.1 can miss a confirmation that arrives before it starts waiting for it).

  connect PORT       connect to 127.0.0.1:PORT and start data transfer -> OPEN
  standby PORT       connect, data transfer stopped (a standby connection) -> CONNECTED
  start / stop       STARTDT / STOPDT -> STARTED / STOPPED
  disconnect         close the connection -> DISCONNECTED
  gi [CA] / ci [CA]  general / counter interrogation -> SENT
  clock [CA]         clock synchronisation -> SENT
  cmd TYPE IOA VALUE [sbo] [ca=N] [cot=NAME]
                     a command (TYPE as c104.Type names it; VALUE 0/1 for single, off/on
                     for double, lower/higher for step, a number for set-points) -> SENT
  quit
Prints READY first. Every wait is bounded.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../testrig/peers"))
import c104_tls  # noqa: E402 (before c104: a TLS client loads its shim first)

TLS, _ = c104_tls.from_argv(sys.argv[1:], client=True)
import c104  # noqa: E402

LOCK = threading.Lock()


def say(line: str) -> None:
    with LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def on_raw(connection: c104.Connection, data: bytes) -> None:
    say("RX " + bytes(data).hex())


def wait_state(conn, states, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.state in states:
            return True
        time.sleep(0.02)
    return False


class Master:
    def __init__(self) -> None:
        tls = {"transport_security": TLS} if TLS is not None else {}
        self.client = c104.Client(tick_rate_ms=50, command_timeout_ms=8000, **tls)
        self.conn = None
        self.stations = {}
        self.points = {}

    def connect(self, port: int, start: bool) -> str:
        if self.conn is None:
            # MUTED: c104 sends no STARTDT by itself (a standby connection until `start`)
            init = c104.Init.NONE if start else c104.Init.MUTED
            self.conn = self.client.add_connection(ip="127.0.0.1", port=port, init=init)
            self.conn.on_receive_raw(callable=on_raw)
            self.client.start()
        else:
            self.conn.connect()
        if not wait_state(self.conn, (c104.ConnectionState.OPEN, c104.ConnectionState.OPEN_MUTED), 10):
            return f"FAIL connect: state {self.conn.state}"
        if start:
            r = self.start()
            return "OPEN" if r == "STARTED" else r
        return "CONNECTED"

    def start(self) -> str:
        # c104 2.2.1 sometimes leaves the connection OPEN_MUTED: send STARTDT again then
        for _ in range(5):
            self.conn.unmute()
            if wait_state(self.conn, (c104.ConnectionState.OPEN,), 2):
                return "STARTED"
        return f"FAIL start: state {self.conn.state}"

    def stop(self) -> str:
        self.conn.mute()
        if wait_state(self.conn, (c104.ConnectionState.OPEN_MUTED,), 5):
            return "STOPPED"
        return f"FAIL stop: state {self.conn.state}"

    def station(self, ca: int):
        if ca not in self.stations:
            # c104 adds a station by itself when its data arrives
            st = self.conn.get_station(common_address=ca)
            self.stations[ca] = st if st is not None else self.conn.add_station(common_address=ca)
        return self.stations[ca]

    def point(self, ca: int, type_name: str, ioa: int, sbo: bool):
        key = (ca, ioa)
        station = self.station(ca)
        wanted = (type_name, sbo)
        old = self.points.get(key)
        if old is not None and old[0] != wanted:
            station.remove_point(io_address=ioa)
            old = None
        if old is None and station.get_point(io_address=ioa) is not None:
            station.remove_point(io_address=ioa)
        if old is None:
            mode = c104.CommandMode.SELECT_AND_EXECUTE if sbo else c104.CommandMode.DIRECT
            p = station.add_point(io_address=ioa, type=getattr(c104.Type, type_name),
                                  command_mode=mode)
            self.points[key] = (wanted, p)
            old = self.points[key]
        return old[1]

    def command(self, args) -> str:
        type_name, ioa, value = args[0], int(args[1]), args[2]
        opts = args[3:]
        sbo = "sbo" in opts
        ca, cot = 1, c104.Cot.ACTIVATION
        for o in opts:
            if o.startswith("ca="):
                ca = int(o[3:])
            if o.startswith("cot="):
                cot = getattr(c104.Cot, o[4:])
        p = self.point(ca, type_name, ioa, sbo)
        if type_name.startswith("C_SC"):
            p.value = value in ("1", "on", "true")
        elif type_name.startswith("C_DC"):
            p.value = c104.Double.ON if value == "on" else c104.Double.OFF
        elif type_name.startswith("C_RC"):
            p.value = c104.Step.HIGHER if value == "higher" else c104.Step.LOWER
        elif type_name.startswith("C_SE_NB"):
            p.value = c104.Int16(int(value))
        elif type_name.startswith("C_SE_NA"):
            p.value = c104.NormalizedFloat(float(value))
        else:
            p.value = float(value)
        # transmit() blocks until the confirmation (or its timeout): run it aside so the
        # test keeps reading frames
        threading.Thread(target=lambda: p.transmit(cause=cot), daemon=True).start()
        return "SENT"


def main() -> int:
    if os.environ.get("C104_DEBUG"):
        c104.set_debug_mode(c104.Debug.Client | c104.Debug.Connection)
    m = Master()
    say("READY")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        op, args = words[0], words[1:]
        try:
            if op == "connect":
                say(m.connect(int(args[0]), True))
            elif op == "standby":
                say(m.connect(int(args[0]), False))
            elif op == "start":
                say(m.start())
            elif op == "stop":
                say(m.stop())
            elif op == "disconnect":
                m.conn.disconnect()
                wait_state(m.conn, (c104.ConnectionState.CLOSED,), 5)
                say("DISCONNECTED")
            elif op == "gi":
                m.conn.interrogation(common_address=int(args[0]) if args else 1,
                                     cause=c104.Cot.ACTIVATION, qualifier=c104.Qoi.STATION,
                                     wait_for_response=False)
                say("SENT")
            elif op == "ci":
                m.conn.counter_interrogation(common_address=int(args[0]) if args else 1,
                                             cause=c104.Cot.ACTIVATION,
                                             qualifier=c104.Rqt.GENERAL, freeze=c104.Frz.READ,
                                             wait_for_response=False)
                say("SENT")
            elif op == "clock":
                m.conn.clock_sync(common_address=int(args[0]) if args else 1,
                                  wait_for_response=False)
                say("SENT")
            elif op == "cmd":
                say(m.command(args))
            elif op == "quit":
                break
            else:
                say(f"FAIL unknown command {op}")
        except Exception as e:  # the test reads the failure, the peer keeps running
            say(f"FAIL {op}: {e!r}")
    m.client.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
