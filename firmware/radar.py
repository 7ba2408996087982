# hydrolink RS-485 Modbus RTU radar level driver (function 0x03, read
# holding registers), behind the level interface of sensors.py (read_mm,
# configure). A module of its own so that a 4-20 mA station does not carry
# its code in the heap; sensors.make_level imports it for a radar station.
try:
    from micropython import const
except ImportError:  # CPython (tests, host tools): const(x) is x
    def const(x):  # type: ignore[misc]
        return x

from sensors import BAD_REPLY, NO_ANSWER, SensorError, muldiv

_RADAR_MAX = const(10000000)  # mm: a reading beyond 10 km is garbage


def crc16(buf, n):
    # CRC-16/Modbus of buf[0:n]: reflected poly 0xA001, init 0xFFFF
    crc = 0xFFFF
    for i in range(n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


class ModbusRadar:
    # uart: an object with any(), write(buf) and readinto(buf) -> n or None (the
    # board's machine.UART with a timeout of ~200 ms and RS-485 direction
    # handled by the board; the simulator gives its own). Buffers are made
    # once. A reply is 5 + 2*regs bytes: addr, 0x03, byte count, data, CRC.

    def __init__(self, uart, cfg):
        self.uart = uart
        self._req = bytearray(8)
        self._rsp = bytearray(9)
        self.raw = 0  # last register value (for the technician's console)
        self.configure(cfg)

    def configure(self, cfg):
        self.addr = cfg["radar_addr"]
        self.regs = cfg["radar_regs"]
        self.unit = cfg["radar_unit_mm"]
        self.distance = cfg["radar_distance"]
        self.datum = cfg["datum_mm"]
        self.gain = cfg["cal_gain"]
        self.offset = cfg["cal_offset_mm"]
        r = self._req
        reg = cfg["radar_reg"]
        r[0] = self.addr
        r[1] = 3
        r[2] = reg >> 8
        r[3] = reg & 0xFF
        r[4] = 0
        r[5] = self.regs
        c = crc16(r, 6)
        r[6] = c & 0xFF  # Modbus sends the CRC low byte first
        r[7] = c >> 8
        # read exactly the reply's length, so readinto does not wait out its
        # timeout for bytes that never come
        self._rx = memoryview(self._rsp)[:5 + 2 * self.regs]

    def parse(self, buf, n):
        # register value from a reply of n bytes in buf; SensorError if bad
        want = 5 + 2 * self.regs
        if n < 5 or buf[0] != self.addr:
            raise SensorError(NO_ANSWER if n < 5 else BAD_REPLY)
        if buf[1] != 3 or n < want or buf[2] != 2 * self.regs:
            raise SensorError(BAD_REPLY)  # 0x83: exception reply
        c = crc16(buf, want - 2)
        if buf[want - 2] != c & 0xFF or buf[want - 1] != c >> 8:
            raise SensorError(BAD_REPLY)
        v = (buf[3] << 8) | buf[4]
        if self.regs == 2:
            # int32, high word first; kept within small ints (|v| < 2^30)
            if v & 0x8000:
                v -= 0x10000
            if v >= 0x4000 or v < -0x4000:
                raise SensorError(BAD_REPLY)
            v = (v << 16) | (buf[5] << 8) | buf[6]
        return v

    def drain(self):
        # drop whatever is in the RX buffer: a late reply to an earlier
        # request (or line noise) must not be taken as the answer to this one
        u = self.uart
        rsp = self._rsp
        while u.any():
            if not u.readinto(rsp):
                break

    def read_mm(self):
        try:
            self.drain()
            self.uart.write(self._req)
            n = self.uart.readinto(self._rx)
        except OSError:
            raise SensorError(NO_ANSWER)
        v = self.parse(self._rsp, n or 0)
        self.raw = v
        if v > _RADAR_MAX // self.unit or v < -_RADAR_MAX // self.unit:
            raise SensorError(BAD_REPLY)
        d = muldiv(v * self.unit, self.gain, 10000)
        if self.distance:
            d = -d  # a radar looks down: more distance is less water
        return self.datum + self.offset + d
