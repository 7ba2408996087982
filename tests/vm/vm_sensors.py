# sensors.py and radar.py on the VM and on CPython: rain gauge debounce and stuck switch,
# 4-20 mA conversion and faults, Modbus RTU radar framing.
import config
import radar
import sensors
from sensors import SensorError
from tinytest import on_micropython, raises, run


def test_debounce_bounce_not_counted():
    g = sensors.RainGauge(200, 10000)
    for t in (1000, 1001, 1003, 1006, 1010, 1150):  # one closure, bouncing
        g.on_edge(t)
    assert g.take() == (1, False)
    assert g.bounces == 5
    g.on_edge(3000)  # the next tip
    g.on_edge(3002)
    assert g.take() == (1, False)
    assert g.take() == (0, False)
    assert g.count == 2


def test_debounce_from_first_edge_at_zero_ticks():
    g = sensors.RainGauge(50, 10000)
    g.on_edge(0)
    g.on_edge(3)
    g.on_edge(60)
    assert g.take() == (2, False)


def test_debounce_across_ticks_wrap():
    g = sensors.RainGauge(200, 10000)
    top = 0x3FFFFFFF
    g.on_edge(top - 5)
    g.on_edge(10)  # 16 ms later, after the wrap: bounce
    assert g.take() == (1, False)
    g.on_edge(500)
    assert g.take() == (1, False)


def test_ticks_diff_agrees_with_time_ticks_add():
    # board ticks wrap at 2^30, the unix port's much later: either way the
    # difference of two ticks close in time comes out right
    try:
        import time
        add = time.ticks_add  # type: ignore[attr-defined]
    except AttributeError:
        def add(a, b):
            return (a + b) & 0x3FFFFFFF
    for b in (0, 5, 0x1FFFFFFF, 0x3FFFFFF0, 0x3FFFFFFF):
        for d in (0, 1, -1, 300, -300, 100000, 0x1FFFFFFF):
            assert sensors.ticks_diff(add(b, d), b) == d, (b, d)


def test_stuck_switch_faults_and_stops_counting():
    g = sensors.RainGauge(200, 10000)
    g.on_edge(0)  # a real tip, then the switch stays closed and chatters
    g.poll(100, True)
    for t in range(500, 10000, 500):
        g.on_edge(t)
        g.poll(t, True)
    assert g.count > 1  # chatter was counted until stuck was known ...
    g.poll(10100, True)
    assert g.stuck
    assert g.count == 1  # ... and is taken back on detection
    for t in range(10500, 30000, 500):  # stuck: counts nothing, however long
        g.on_edge(t)
        g.poll(t, True)
    assert g.take() == (1, True)
    assert g.take() == (0, True)  # still stuck: still fault
    g.poll(30500, False)  # opens again
    assert not g.stuck
    assert g.take() == (0, True)  # the interval it came free in began stuck
    assert g.take() == (0, False)
    g.on_edge(40000)
    assert g.take() == (1, False)


def test_stuck_after_a_take_never_goes_negative():
    g = sensors.RainGauge(200, 5000)
    g.on_edge(0)
    g.poll(100, True)
    g.on_edge(1000)
    g.on_edge(2000)
    assert g.take() == (3, False)  # reported before stuck was known
    g.poll(6000, True)
    assert g.take() == (0, True)


def test_short_closures_are_not_stuck():
    g = sensors.RainGauge(200, 10000)
    for k in range(100):
        t = k * 2000
        g.on_edge(t)
        g.poll(t + 50, True)  # closed for ~100 ms per tip
        g.poll(t + 1000, False)
    assert g.take() == (100, False)


class FakeADC:
    def __init__(self, uv):
        self.uv = uv
        self.fail = False

    def read_uv(self):
        if self.fail:
            raise OSError(5)
        return self.uv


def level_cfg(**kw):
    cfg, errors = config.validate(kw)
    assert not errors, errors
    return cfg


def test_level420_conversion():
    adc = FakeADC(0)
    lv = sensors.Level420(adc, level_cfg(shunt_ohm=100, level_4ma_mm=0, level_20ma_mm=10000))
    adc.uv = 4000 * 100  # 4 mA
    assert lv.read_mm() == 0
    adc.uv = 12000 * 100
    assert lv.read_mm() == 5000
    adc.uv = 20000 * 100
    assert lv.read_mm() == 10000
    adc.uv = 4016 * 100  # 16 µA = 10 mm
    assert lv.read_mm() == 10
    assert lv.ua == 4016


def test_level420_datum_gain_offset():
    adc = FakeADC(12000 * 250)
    cfg = level_cfg(shunt_ohm=250, level_4ma_mm=0, level_20ma_mm=20000, adc_max_uv=5000000,
                    datum_mm=55000, cal_gain=10100, cal_offset_mm=-25)
    lv = sensors.Level420(adc, cfg)
    assert lv.read_mm() == 55000 - 25 + 10100  # 10 m of water x 1.01
    lv.configure(level_cfg(shunt_ohm=250, level_4ma_mm=1000, level_20ma_mm=-1000, adc_max_uv=5000000))
    assert lv.read_mm() == 0  # an inverted range works too


def test_level420_faults():
    adc = FakeADC(3500 * 100)
    lv = sensors.Level420(adc, level_cfg())  # the default shunt: 100 ohm
    assert raises(SensorError, lv.read_mm).code == sensors.OPEN_LOOP
    adc.uv = 0
    assert raises(SensorError, lv.read_mm).code == sensors.OPEN_LOOP
    adc.uv = 21000 * 100
    assert raises(SensorError, lv.read_mm).code == sensors.OVER_RANGE
    adc.uv = 20400 * 100  # a little above 20 mA: above range, still a value
    assert lv.read_mm() == 10250
    adc.fail = True
    assert raises(SensorError, lv.read_mm).code == sensors.NO_ANSWER


def test_level420_adc_full_scale_is_over_range():
    # 150 ohm at 17 mA = 2.55 V: beyond the ESP32 ADC's 2.45 V at 11 dB, the
    # reading is clipped, so it is not a level (it was taken as ~81 % of span)
    adc = FakeADC(2450000)
    lv = sensors.Level420(adc, level_cfg(shunt_ohm=150))
    assert raises(SensorError, lv.read_mm).code == sensors.OVER_RANGE
    adc.uv = 2449000  # 16.3 mA, just below full scale: a value
    assert lv.read_mm() == 7704
    assert config.DEFAULTS["shunt_ohm"] * 20500 < config.DEFAULTS["adc_max_uv"]  # the default fits
    lv.configure(level_cfg(shunt_ohm=150, adc_max_uv=3300000))  # an ADC that goes higher
    adc.uv = 17000 * 150
    assert lv.read_mm() == 8125


def test_muldiv_rounds_and_stays_small():
    for a in (0, 1, -1, 7, -7, 16500, -400, 123456, -99999, 1000000):
        for b in (1, 3, 9999, 10000, 20000, 16000, -5000, 2000000):
            for c in (10000, 16000):
                want = (2 * a * b + c) // (2 * c)  # round half up
                assert sensors.muldiv(a, b, c) == want, (a, b, c)


def test_crc16_modbus_check_value():
    b = bytearray(b"123456789")
    assert radar.crc16(b, 9) == 0x4B37


class FakeUART:
    # .rx: bytes in the receive buffer before the request (a stale reply);
    # .reply: what the slave answers to a request
    def __init__(self):
        self.sent = []
        self.reply = b""
        self.rx = b""
        self.fail = False

    def any(self):
        return len(self.rx)

    def write(self, buf):
        if self.fail:
            raise OSError(110)
        self.sent.append(bytes(buf))
        self.rx += self.reply
        return len(buf)

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        if n == 0:
            return None  # timeout
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n


def reply(addr, fc, data):
    b = bytearray([addr, fc, len(data)]) + bytearray(data)
    c = radar.crc16(b, len(b))
    return bytes(b + bytearray([c & 0xFF, c >> 8]))


def test_modbus_request_frame():
    u = FakeUART()
    r = radar.ModbusRadar(u, level_cfg(level_sensor="radar"))
    u.reply = reply(1, 3, [0x00, 0x7B])
    r.read_mm()
    assert u.sent[0] == bytes([1, 3, 0, 0, 0, 1, 0x84, 0x0A])  # the textbook frame


def test_modbus_radar_distance_and_level():
    u = FakeUART()
    cfg = level_cfg(level_sensor="radar", datum_mm=75000, radar_distance=True)
    r = radar.ModbusRadar(u, cfg)
    u.reply = reply(1, 3, [0x13, 0x88])  # 5000 mm down to the water
    assert r.read_mm() == 70000
    cfg = level_cfg(level_sensor="radar", radar_regs=2, radar_distance=False,
                    radar_unit_mm=10, radar_addr=7, radar_reg=0x102)
    r.configure(cfg)
    u.reply = reply(7, 3, [0xFF, 0xFF, 0xFF, 0x9C])  # int32 -100 cm
    assert r.read_mm() == -1000
    assert u.sent[-1][:6] == bytes([7, 3, 1, 2, 0, 2])


def test_modbus_faults():
    u = FakeUART()
    r = radar.ModbusRadar(u, level_cfg(level_sensor="radar"))
    u.reply = b""
    assert raises(SensorError, r.read_mm).code == sensors.NO_ANSWER
    good = reply(1, 3, [0x00, 0x7B])
    u.reply = good[:-1] + bytes([good[-1] ^ 1])
    assert raises(SensorError, r.read_mm).code == sensors.BAD_REPLY
    u.reply = reply(2, 3, [0x00, 0x7B])  # another slave
    assert raises(SensorError, r.read_mm).code == sensors.BAD_REPLY
    ex = bytearray([1, 0x83, 2])
    c = radar.crc16(ex, 3)
    u.reply = bytes(ex + bytearray([c & 0xFF, c >> 8]))  # exception: illegal address
    assert raises(SensorError, r.read_mm).code == sensors.BAD_REPLY
    u.fail = True
    assert raises(SensorError, r.read_mm).code == sensors.NO_ANSWER


def test_modbus_stale_reply_is_drained():
    # a reply that came after the last read timed out (or noise) sits in the
    # RX buffer: it must not be taken as the answer to the next request
    u = FakeUART()
    r = radar.ModbusRadar(u, level_cfg(level_sensor="radar", radar_distance=False))
    u.rx = reply(1, 3, [0x00, 0x11]) + b"\x00\xff"  # late reply + noise
    u.reply = reply(1, 3, [0x00, 0x7B])
    assert r.read_mm() == 0x7B
    assert u.rx == b""
    u.rx = reply(1, 3, [0x00, 0x11])
    u.reply = b""  # no answer now: NO_ANSWER, not the stale 0x11
    assert raises(SensorError, r.read_mm).code == sensors.NO_ANSWER


def test_make_level_picks_the_driver():
    assert isinstance(sensors.make_level(level_cfg(), adc=FakeADC(0)), sensors.Level420)
    assert isinstance(sensors.make_level(level_cfg(level_sensor="radar"), uart=FakeUART()),
                      radar.ModbusRadar)
    assert sensors.make_level(level_cfg(level_sensor="none"), adc=FakeADC(0)) is None


def test_irq_handler_allocates_nothing():
    if not on_micropython():
        return  # CPython: no heap to measure
    import gc
    g = sensors.RainGauge(200, 10000)
    gc.collect()
    before = gc.mem_alloc()
    for t in range(0, 100000, 7):
        g.on_edge(t)
    assert gc.mem_alloc() == before, gc.mem_alloc() - before


def test_irq_handler_allocates_nothing_days_after_the_last_tip():
    # a - b + 2^29 passed 2^30 (no small int on a 32-bit board) once the last
    # tip was more than 2^29 ms (6.2 days) before: ticks_diff must not
    for last, now in ((0, 0x20000005), (0x3FFFFF00, 0x1FFFFF00), (5, 0x3FFFFFFF)):
        d = sensors.ticks_diff(now, last)
        assert -0x20000000 <= d < 0x20000000
    assert sensors.ticks_diff(0x20000005, 0) == -0x1FFFFFFB
    assert sensors.ticks_diff(0x1FFFFFFF, 0) == 0x1FFFFFFF
    assert sensors.ticks_diff(0x20000000, 0) == -0x20000000
    if not on_micropython():
        return
    import gc
    g = sensors.RainGauge(200, 10000)
    g.on_edge(0x3FFFFFF0)
    edges = [(0x3FFFFFF0 + k * 0x7654321) & 0x3FFFFFFF for k in range(1, 200)]
    gc.collect()
    before = gc.mem_alloc()
    for t in edges:
        g.on_edge(t)
    assert gc.mem_alloc() == before, gc.mem_alloc() - before


run(globals())
