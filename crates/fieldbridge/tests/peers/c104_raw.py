"""Runs a c104 peer script (e.g. crates/iec104-master/tests/peers/c104_outstation.py) with
every command ASDU (type 45-64) it receives or sends printed on stdout:

    RAW rx|tx type=<type id> cot=<cause> neg=<0|1> se=<select bit> ioa=<address>

Usage: c104_raw.py SCRIPT [ARGS...]. Assumes the c104 defaults (COT 2, CA 2, IOA 3 bytes).
"""
import os
import runpy
import sys

import c104


def decode(data: bytes):
    if len(data) < 16 or data[0] != 0x68 or data[2] & 1:
        return None  # not an I-frame with an ASDU
    type_id = data[6]
    if not 45 <= type_id <= 64:
        return None
    cot = data[8] & 0x3F
    neg = (data[8] >> 6) & 1
    ioa = data[12] | (data[13] << 8) | (data[14] << 16)
    se = (data[-1] >> 7) & 1
    return f"type={type_id} cot={cot} neg={neg} se={se} ioa={ioa}"


def emit(line: str) -> None:
    # one write(2) per line: c104 calls back from several threads (print() may interleave)
    sys.stdout.flush()
    os.write(1, (line + "\n").encode())


def on_rx(server: c104.Server, data: bytes) -> None:
    line = decode(data)
    if line:
        emit(f"RAW rx {line}")


def on_tx(server: c104.Server, data: bytes) -> None:
    line = decode(data)
    if line:
        emit(f"RAW tx {line}")


_start = c104.Server.start


def start(self) -> None:
    self.on_receive_raw(callable=on_rx)
    self.on_send_raw(callable=on_tx)
    _start(self)


c104.Server.start = start
script = sys.argv[1]
sys.argv = [script] + sys.argv[2:]
runpy.run_path(script, run_name="__main__")
