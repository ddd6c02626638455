"""A pymodbus (3.x) Modbus server for fieldbridge's modbus-master tests.

    modbus_server.py (--rtu PTY | --tcp PORT) [--ids 1] [--corrupt N]

Serves slave/unit id(s) from --ids (others are silent, as on a real RS-485 bus) with this
register map (0-based protocol addresses):

  holding 0      u16 1234
  holding 1      i16 -2
  holding 2-3    u32 74565, word order big (high word first)
  holding 4-5    u32 74565, word order little (low word first)
  holding 6-7    f32 123.5, word order big
  holding 8-9    f32 -42.25, word order little
  holding 10     u16 500 (the test scales it: * 0.1 - 10 = 40.0)
  holding 20     u16 0, a set-point the test writes
  holding 30     u16 a counter, +1 on every read request that covers it
  (holding 31..  not there: a read answers exception 2, illegal data address)
  coils 0..7     1 0 1 0 0 0 0 0 (coil 5 is written by the test)
  discrete 0..7  0 1 0 0 0 0 0 0
  input 0        u16 777

--corrupt N: the first N answers are mangled in turn (bad CRC, short frame, another slave's
frame with a good CRC, garbage, garbage + the real answer); RTU only.

Prints one JSON object per line on stdout: {"event": "ready"}, {"event": "connect"},
{"event": "request", "dev": 1, "fc": 3, "addr": 0, "count": 2},
{"event": "write", "dev": 1, "fc": 6, "addr": 20, "values": [..]}, {"event": "corrupt", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice, DataType
from pymodbus import FramerType


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def regs_u32(v: int, little_words: bool) -> list[int]:
    hi, lo = (v >> 16) & 0xFFFF, v & 0xFFFF
    return [lo, hi] if little_words else [hi, lo]


def regs_f32(v: float, little_words: bool) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", v))
    return [lo, hi] if little_words else [hi, lo]


def holding() -> list[int]:
    regs = [0] * 31
    regs[0] = 1234
    regs[1] = (-2) & 0xFFFF
    regs[2:4] = regs_u32(74565, False)
    regs[4:6] = regs_u32(74565, True)
    regs[6:8] = regs_f32(123.5, False)
    regs[8:10] = regs_f32(-42.25, True)
    regs[10] = 500
    return regs


COUNTER = 30


async def action(function_code, start_address, address, count, current_registers, set_values):
    """Counts reads of the counter register."""
    if function_code == 3 and set_values is None and address <= COUNTER < address + count:
        i = COUNTER - start_address
        if 0 <= i < len(current_registers):
            current_registers[i] = (current_registers[i] + 1) & 0xFFFF
    return None


def device(dev_id: int) -> SimDevice:
    return SimDevice(
        id=dev_id,
        simdata=(
            [SimData(0, values=[True, False, True, False, False, False, False, False], datatype=DataType.BITS)],
            [SimData(0, values=[False, True, False, False, False, False, False, False], datatype=DataType.BITS)],
            [SimData(0, values=holding(), datatype=DataType.REGISTERS)],
            [SimData(0, values=[777], datatype=DataType.REGISTERS)],
        ),
        action=action,
    )


def crc16(data: bytes) -> bytes:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


class Mangler:
    def __init__(self, count: int):
        self.left = count
        self.n = 0

    def __call__(self, sending: bool, data: bytes) -> bytes:
        if not sending or self.left <= 0 or len(data) < 4:
            return data
        self.left -= 1
        kind = self.n % 5
        self.n += 1
        if kind == 0:
            out = data[:-1] + bytes([data[-1] ^ 0xFF])
            name = "bad_crc"
        elif kind == 1:
            out = data[:3]
            name = "short"
        elif kind == 2:
            body = bytes([(data[0] % 247) + 1]) + data[1:-2]
            out = body + crc16(body)
            name = "wrong_slave"
        elif kind == 3:
            out = bytes([0xFF, 0x00, 0x55, 0xAA, 0x13, 0x37, 0x00])
            name = "garbage"
        else:
            out = bytes([0x00, 0xFF, 0xFE]) + data
            name = "garbage_then_answer"
        emit(event="corrupt", kind=name)
        return out


SERVED: set[int] = set()


def trace_pdu(sending: bool, pdu):
    """Logs each request; a request to an id not served gets no answer (returning None drops
    it), as a missing slave on a real bus."""
    if not sending:
        fc = pdu.function_code
        if fc in (5, 6, 15, 16):
            values = list(getattr(pdu, "registers", None) or getattr(pdu, "bits", None) or [])
            emit(event="write", dev=pdu.dev_id, fc=fc, addr=pdu.address, values=[int(v) for v in values])
        else:
            emit(event="request", dev=pdu.dev_id, fc=fc, addr=pdu.address, count=getattr(pdu, "count", 0))
        if pdu.dev_id not in SERVED:
            return None
    return pdu


def trace_connect(connected: bool):
    emit(event="connect" if connected else "disconnect")


async def main() -> None:
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--rtu")
    g.add_argument("--tcp", type=int)
    ap.add_argument("--ids", default="1")
    ap.add_argument("--corrupt", type=int, default=0)
    args = ap.parse_args()
    SERVED.update(int(i) for i in args.ids.split(","))
    devices = [device(i) for i in sorted(SERVED)]
    common = dict(
        trace_pdu=trace_pdu,
        trace_connect=trace_connect,
        trace_packet=Mangler(args.corrupt),
        ignore_missing_devices=True,
    )
    if args.rtu:
        server = ModbusSerialServer(devices, framer=FramerType.RTU, port=args.rtu, baudrate=19200, **common)
    else:
        server = ModbusTcpServer(devices, framer=FramerType.SOCKET, address=("127.0.0.1", args.tcp), **common)
    await server.serve_forever(background=True)
    emit(event="ready")
    await server.serving


if __name__ == "__main__":
    asyncio.run(main())
