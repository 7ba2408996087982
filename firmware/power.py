# hydrolink power policy. Pure: battery millivolts and the reset cause come
# in, decisions go out.
#
# States, each left only with hysteresis (batt_hyst_mv above its threshold),
# so a battery hovering at a threshold does not flap:
#   NORMAL   everything on.
#   SHED     below batt_shed_mv: reports every shed_report_interval, backfill
#            paused, alarms still sent at once; low_power flag set.
#   CRITICAL below batt_critical_mv: radio off, nothing sent (a transmission
#            would brown the board out); sampling and recording go on, the
#            queue keeps everything for later.
#
# Restart after a brownout without a burst: a board that browned out while
# transmitting must not come back and transmit at once (it browns out again),
# and a hundred stations restarting together after a storm must not all call
# at the same second. So after power-on or brownout the first transmission
# waits holdoff() seconds (jitter from a seed; doubled per consecutive
# brownout), and a brownout boot starts in SHED until the battery has shown
# it recovered.
try:
    from micropython import const
except ImportError:  # CPython (tests, host tools): const(x) is x
    def const(x):  # type: ignore[misc]
        return x

NORMAL = const(0)
SHED = const(1)
CRITICAL = const(2)

LOW_POWER = const(1)  # report flag bit, SPEC §5.4

# reset causes, SPEC §8 status key 5
POWER_ON = const(0)
HARD = const(1)
WATCHDOG = const(2)
DEEPSLEEP = const(3)
SOFT = const(4)
BROWNOUT = const(5)

_MASK = const(0x3FFFFFFF)
_MAX_HOLDOFF = const(3600)


def jitter(seed, n):
    # deterministic pseudo-random 0 .. n-1 from an integer seed (station id,
    # boot count, a few bytes of os.urandom: the board chooses)
    if n <= 1:
        return 0
    x = (seed & _MASK) or 1
    for _ in range(3):  # xorshift, kept within 30 bits
        x ^= (x << 7) & _MASK
        x ^= x >> 9
        x ^= (x << 8) & _MASK
    return x % n


def boot_state(reset_cause):
    return SHED if reset_cause == BROWNOUT else NORMAL


def holdoff(reset_cause, seed, holdoff_s, brownouts=0):
    # seconds to wait after boot before the first transmission. brownouts:
    # consecutive brownout resets (persisted by the runtime, zeroed after a
    # day without one).
    if reset_cause == DEEPSLEEP or reset_cause == SOFT:
        return 0  # an ordinary wake or a commanded reboot: nothing to spread
    n = holdoff_s
    if reset_cause == BROWNOUT:
        k = brownouts if brownouts < 6 else 6
        n = holdoff_s << k
        if n > _MAX_HOLDOFF:
            n = _MAX_HOLDOFF
    return jitter(seed, n + 1)


def backoff(attempt, seed, base, cap):
    # retry delay after `attempt` failures (0 = the first): base * 2^attempt
    # capped at cap, the upper half random, so retries spread out
    # doubled only while below cap: base << 20 went beyond small ints
    d = base
    for _ in range(attempt if attempt < 30 else 30):
        if d >= cap:
            break
        d <<= 1
    if d > cap:
        d = cap
    h = d // 2
    return d - h + jitter(seed ^ attempt, h + 1)  # xor: seed + attempt could pass 2^30


class Power:
    def __init__(self, cfg, state=NORMAL):
        self.state = state
        self.configure(cfg)

    def configure(self, cfg):
        self.shed = cfg["batt_shed_mv"]
        self.crit = cfg["batt_critical_mv"]
        self.hyst = cfg["batt_hyst_mv"]
        self.report = cfg["report_interval"]
        self.shed_report = cfg["shed_report_interval"]

    def update(self, mv):
        # battery reading (mV, at rest: not during a transmission) -> state;
        # None (read failed) keeps the state
        if mv is None:
            return self.state
        s = self.state
        if mv < self.crit:
            s = CRITICAL
        elif mv < self.shed:
            if s == NORMAL:
                s = SHED
            elif s == CRITICAL and mv >= self.crit + self.hyst:
                s = SHED
        elif mv >= self.shed + self.hyst:
            s = NORMAL
        elif s == CRITICAL and mv >= self.crit + self.hyst:
            s = SHED
        self.state = s
        return s

    def report_interval(self):
        # seconds between scheduled reports (while not in alarm)
        return self.report if self.state == NORMAL else self.shed_report

    def may_send(self):
        # scheduled reports, alarms, status and command results
        return self.state != CRITICAL

    def may_backfill(self):
        return self.state == NORMAL

    def flags(self):
        return LOW_POWER if self.state != NORMAL else 0
