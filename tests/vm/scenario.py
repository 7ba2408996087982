# A day of station life through the whole pure pipeline (gauge -> level
# driver -> sampler + QC -> alarms -> power), with storms, bounce, sensor
# faults, a stuck switch and a sagging battery, all from one integer seed.
# Prints every reading and event; tests/test_firmware_logic.py runs it on the
# VM and on CPython and wants the same bytes out (tier 1: same behaviour).
#   scenario.py SEED [SECONDS]
import sys

import alarms
import config
import power
import sampler
import sensors

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 1
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 86400
state = [SEED & 0x3FFFFFFF or 1]


def rnd(n):
    # LCG in 30 bits: the same numbers on both interpreters
    state[0] = (state[0] * 1103515245 + 12345) & 0x3FFFFFFF
    return (state[0] >> 8) % n


class ADC:
    def __init__(self):
        self.ua = 12000
        self.fail = False

    def read_uv(self):
        if self.fail:
            raise OSError(5)
        return self.ua * 150 + rnd(300) - 150


cfg, errors = config.validate({
    "station": 1, "level_alarm_mm": 7000, "level_rise_mm": 400, "rain_alarm_tenths": 80,
    "debounce_ms": 150, "stuck_ms": 8000, "qc_level_step_mm": 300, "qc_flat_n": 20,
    "batt_shed_mv": 11500, "batt_critical_mv": 11000,
})
assert not errors, errors
t0 = 1000 * 86400 + rnd(86400)  # boot at any second of a day
print("boot", t0)
gauge = sensors.RainGauge(cfg["debounce_ms"], cfg["stuck_ms"])
adc = ADC()
level = sensors.make_level(cfg, adc=adc)
s = sampler.Sampler(cfg, t0)
al = alarms.Alarms(cfg)
pw = power.Power(cfg)
batt = 12600
ticks = 0
t = t0
storm = 0
stuck = 0
while t < t0 + SECONDS:
    due = s.next_due(t)
    # rain between t and due: tips with bounce, sometimes a stuck switch
    if rnd(500) == 0:
        storm = 30 + rnd(120)
    if storm:
        storm -= 1
    if stuck == 0 and rnd(3000) == 0:
        stuck = 5 + rnd(20)
    for _ in range(t, due):
        ticks = (ticks + 1000) & 0x3FFFFFFF
        if stuck:
            gauge.on_edge((ticks + rnd(900)) & 0x3FFFFFFF)
            gauge.poll(ticks, True)
            continue
        if storm and rnd(3) == 0:
            gauge.on_edge(ticks)
            for _ in range(rnd(4)):  # bounce
                gauge.on_edge((ticks + 1 + rnd(20)) & 0x3FFFFFFF)
        gauge.poll(ticks, False)
    if stuck:
        stuck -= 1
    t = due
    # level follows the storms; the loop sometimes opens
    adc.ua += (20 if storm else -8) + rnd(5) - 2
    adc.ua = max(3000, min(21000, adc.ua))
    adc.fail = rnd(200) == 0
    try:
        s.add_level_sample(t, level.read_mm(), False)
    except sensors.SensorError as e:
        s.add_level_sample(t, None, True)
        print(t, "level error", e.code)
    if not s.is_mark(t):
        continue
    batt += (-40 if storm else 15) + rnd(21) - 10
    batt = max(10500, min(13200, batt))
    tips, fault = gauge.take()
    readings = s.record(t, tips, fault, batt if rnd(50) else None, 200 + rnd(50))
    for r in readings:
        print(r[0], r[1], r[2], r[3])
        for ev in al.update(r[1], r[0], r[2], r[3]):
            print("  alarm", ev[0], ev[1], ev[2], ev[3], ev[4])
    print("  power", pw.update(batt), al.in_alarm, pw.report_interval())
print("end", gauge.count, gauge.bounces)
