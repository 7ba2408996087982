# hydrolink station configuration: one JSON object in a file on flash.
# validate() merges what a file or a set_config command gives over a base
# configuration (defaults, or the running one) and explains every value it
# rejects in one line; a rejected value keeps the base value, so one typo
# never takes the station id or key with it. load() never raises: a missing
# file gives the defaults, a broken one keeps the last good configuration.
# save() is atomic (temp file + rename). Pure apart from the file calls.
import json
import os

try:
    from micropython import const
except ImportError:  # CPython (tests, host tools): const(x) is x
    def const(x):  # type: ignore[misc]
        return x

_MAX_FILE = const(4096)  # bytes; a bigger file is not a config (and would cost heap)
_MAX_SLOTS = const(288)  # ring slots for alarm windows (alarms.py): a day of 5-min values
_BIG = const(0x3FFFFFFF)  # 2^30 - 1: small int on a 32-bit board

# Every key the station knows, with its default. Intervals are seconds and
# sit on multiples of themselves since the hydrolink epoch (UTC marks).
DEFAULTS = {
    # -- identity (written by the flashing tool)
    "station": 0,  # station id 1 .. 2^30-1 (SPEC §1); 0 = not provisioned
    "key": "",  # HMAC key, 64 hex chars = 32 bytes; "" = not provisioned
    "pin_hash": "",  # technician PIN, PBKDF2-HMAC-SHA256 (pin.py): 64 hex; "" = none
    "pin_salt": "",  # its salt: 32 hex (16 bytes)
    # -- schedule, s
    "sample_interval": 60,  # level sampling; divides record_interval
    "record_interval": 300,  # 5 .. 86400, divides 86400: values at :00, :05 ... UTC
    "report_interval": 3600,  # 300 .. 86400, multiple of record_interval
    "shed_report_interval": 10800,  # report interval in low power; >= report_interval
    "batt_interval": 3600,  # battery + logger temperature recorded every N s: hourly, or each record if rarer
    "status_interval": 86400,  # status report (SPEC §8: at least daily)
    # -- tipping-bucket rain gauge
    "tip_tenths": 2,  # rain per tip in 0.1 mm: 0.1 mm -> 1, 0.2 -> 2, 0.5 -> 5
    # a closure within debounce_ms of the last counted one is bounce; longer
    # than the switch's closure (~100 ms) so release bounce is not counted,
    # far shorter than the fastest tip (1.4 s at 500 mm/h with 0.2 mm)
    "debounce_ms": 200,
    "stuck_ms": 10000,  # switch closed longer than this = stuck: fault, stop counting
    # -- water level sensor
    "level_sensor": "4-20",  # "4-20" (current loop on an ADC), "radar" (RS-485 Modbus RTU), "none"
    # 4-20 mA shunt, ohm: 20 mA x 100 = 2.0 V, within the ESP32 ADC's ~2.45 V at
    # 11 dB (150 ohm gave 3.0 V: clipped above ~77 % of the range). Costs a
    # third of the resolution: ~0.8 mV per ADC step = 8 uA = 5 mm of a 10 m span
    "shunt_ohm": 100,
    "adc_max_uv": 2450000,  # shunt voltage at which the ADC reads full scale: OVER_RANGE
    "level_4ma_mm": 0,  # sensor reading at 4 mA, mm
    "level_20ma_mm": 10000,  # sensor reading at 20 mA, mm
    "datum_mm": 0,  # height of the sensor's zero above the station datum, mm
    "cal_gain": 10000,  # calibration gain per 10000 (10000 = 1.0)
    "cal_offset_mm": 0,  # calibration offset against the staff gauge, mm
    "radar_addr": 1,  # Modbus slave address
    "radar_reg": 0,  # holding register with the reading
    "radar_regs": 1,  # 1: uint16, 2: int32 (high word first)
    "radar_unit_mm": 1,  # mm per unit of the register (1 mm, 10 cm)
    "radar_distance": True,  # reading is distance down to water: level = datum - distance
    "median_n": 5,  # samples in the median window ending at a record mark (sampler.py)
    # -- quality control (qc.py)
    "qc_level_min_mm": -10000,  # plausible level range, mm
    "qc_level_max_mm": 200000,
    "qc_level_step_mm": 500,  # max change per record interval, mm; 0 = no check
    "qc_flat_n": 144,  # same level this many times in a row = suspect; 0 = no check
    "qc_rain_max_tenths": 500,  # more rain than this in one record interval = out of range
    # -- alarms (alarms.py); null disables a rule
    "rain_alarm_tenths": 100,  # rain in the window, 0.1 mm (10 mm ...
    "rain_window_s": 1800,  # ... in 30 min); multiple of record_interval
    "rain_hyst_tenths": 20,  # clears below threshold - hysteresis
    "level_alarm_mm": None,  # alarm stage, mm
    "level_low_mm": None,  # low stage, mm
    "level_hyst_mm": 50,  # hysteresis of the three level rules
    "level_rise_mm": 300,  # rise within the window, mm ...
    "level_rise_window_s": 3600,  # ... window, multiple of record_interval
    # -- power (power.py)
    "batt_low_mv": 11800,  # battery_low alarm
    "batt_shed_mv": 11500,  # below: load shedding (longer reports, no backfill)
    "batt_critical_mv": 11000,  # below: radio off, recording only
    "batt_hyst_mv": 300,  # leave a state only this far above its threshold
    "holdoff_s": 60,  # after power-on/brownout, first transmission within 0..N s (jitter)
    # -- queue and uplink
    "queue_max_bytes": 262144,  # flash queue limit; beyond it the oldest are dropped and counted
    "ack_timeout_s": 30,
    "retry_base_s": 10,  # retry backoff: base * 2^n, capped, with jitter
    "retry_cap_s": 900,
    "clock_sync_threshold_s": 10,  # correct the clock from an ACK when off by more
    "max_frame": 1024,  # bytes; smaller on LoRa-like links (SPEC §1)
}

# key -> (min, max, null allowed) for the integer keys
_INT = {
    "station": (0, _BIG, False),
    "sample_interval": (1, 3600, False),
    "record_interval": (5, 86400, False),
    "report_interval": (300, 86400, False),
    "shed_report_interval": (300, 86400, False),
    "batt_interval": (5, 86400, False),
    "status_interval": (3600, 86400, False),
    "tip_tenths": (1, 100, False),
    "debounce_ms": (1, 2000, False),
    "stuck_ms": (1000, 600000, False),
    "shunt_ohm": (10, 1000, False),
    "adc_max_uv": (100000, 5000000, False),
    "level_4ma_mm": (-1000000, 1000000, False),
    "level_20ma_mm": (-1000000, 1000000, False),
    "datum_mm": (-10000000, 10000000, False),
    "cal_gain": (5000, 20000, False),
    "cal_offset_mm": (-1000000, 1000000, False),
    "radar_addr": (1, 247, False),
    "radar_reg": (0, 65535, False),
    "radar_regs": (1, 2, False),
    "radar_unit_mm": (1, 1000, False),
    "median_n": (1, 15, False),
    "qc_level_min_mm": (-10000000, 10000000, False),
    "qc_level_max_mm": (-10000000, 10000000, False),
    "qc_level_step_mm": (0, 1000000, False),
    "qc_flat_n": (0, 10000, False),
    "qc_rain_max_tenths": (1, 100000, False),
    "rain_alarm_tenths": (1, 100000, True),
    "rain_window_s": (5, 86400, False),
    "rain_hyst_tenths": (0, 100000, False),
    "level_alarm_mm": (-10000000, 10000000, True),
    "level_low_mm": (-10000000, 10000000, True),
    "level_hyst_mm": (0, 100000, False),
    "level_rise_mm": (1, 1000000, True),
    "level_rise_window_s": (5, 86400, False),
    "batt_low_mv": (0, 60000, True),
    "batt_shed_mv": (0, 60000, False),
    "batt_critical_mv": (0, 60000, False),
    "batt_hyst_mv": (0, 5000, False),
    "holdoff_s": (0, 3600, False),
    "queue_max_bytes": (4096, 16777216, False),
    "ack_timeout_s": (1, 600, False),
    "retry_base_s": (1, 3600, False),
    "retry_cap_s": (1, 86400, False),
    "clock_sync_threshold_s": (1, 3600, False),
    "max_frame": (64, 1024, False),
}

_SENSORS = ("4-20", "radar", "none")
_HEX = "0123456789abcdefABCDEF"

# Keys that take part in a rule across keys: when any such rule fails, all of
# them keep their base values, so the result is always consistent.
_CROSS = (
    "sample_interval", "record_interval", "report_interval", "shed_report_interval",
    "batt_interval", "median_n", "rain_window_s", "level_rise_window_s",
    "level_4ma_mm", "level_20ma_mm", "qc_level_min_mm", "qc_level_max_mm",
    "batt_shed_mv", "batt_critical_mv", "retry_base_s", "retry_cap_s",
)

SECRET = ("key", "pin_hash", "pin_salt")  # never returned by get_config


def _check(k, v):
    # one-line reason why value v is bad for key k, or None
    r = _INT.get(k)
    if r is not None:
        if v is None:
            return None if r[2] else "must be an integer"
        if type(v) is not int:
            return "must be an integer"
        if v < r[0] or v > r[1]:
            return "must be %d..%d" % (r[0], r[1])
        return None
    if k == "key" or k == "pin_hash" or k == "pin_salt":
        if type(v) is not str:
            return "must be hex text"
        n = 32 if k == "pin_salt" else 64
        if v and len(v) != n:
            return "must be %d hex digits (%d bytes)" % (n, n // 2)
        for c in v:
            if c not in _HEX:
                return "must be hex text"
        return None
    if k == "level_sensor":
        if v not in _SENSORS:
            return "must be one of 4-20, radar, none"
        return None
    if k == "radar_distance":
        return None if type(v) is bool else "must be true or false"
    return "unknown key"


def _window_ok(w, ri):
    return w % ri == 0 and w // ri <= _MAX_SLOTS


def _cross(c):
    # first rule across keys that c breaks, as a one-line reason, or None
    ri = c["record_interval"]
    si = c["sample_interval"]
    if 86400 % ri:
        return "record_interval must divide 86400"
    if ri % si:
        return "sample_interval must divide record_interval"
    if c["report_interval"] % ri:
        return "report_interval must be a multiple of record_interval"
    if c["shed_report_interval"] % ri or c["shed_report_interval"] < c["report_interval"]:
        return "shed_report_interval must be a multiple of record_interval and >= report_interval"
    bi = c["batt_interval"]
    if bi % ri or 86400 % bi or bi > max(ri, 3600):
        return "batt_interval must be a multiple of record_interval dividing 86400, at most 3600 or one record"
    if (c["median_n"] - 1) * si >= ri:
        return "median_n samples must fit in one record_interval"
    if not _window_ok(c["rain_window_s"], ri):
        return "rain_window_s must be a multiple of record_interval, at most 288 of them"
    if not _window_ok(c["level_rise_window_s"], ri):
        return "level_rise_window_s must be a multiple of record_interval, at most 288 of them"
    if c["level_4ma_mm"] == c["level_20ma_mm"]:
        return "level_4ma_mm and level_20ma_mm must differ"
    if c["qc_level_min_mm"] >= c["qc_level_max_mm"]:
        return "qc_level_min_mm must be below qc_level_max_mm"
    if c["batt_critical_mv"] >= c["batt_shed_mv"]:
        return "batt_critical_mv must be below batt_shed_mv"
    if c["retry_base_s"] > c["retry_cap_s"]:
        return "retry_base_s must be <= retry_cap_s"
    return None


def validate(d, base=None):
    # -> (cfg, errors): cfg = base (default: DEFAULTS) with every valid key of d
    # over it; each rejected key keeps its base value and adds "key: reason"
    # to errors (a list of str, empty when all of d was taken).
    if base is None:
        base = DEFAULTS
    cfg = dict(base)
    errors = []
    if type(d) is not dict:
        errors.append("config: must be a JSON object")
        return cfg, errors
    for k in d:
        why = _check(k, d[k])
        if why is None:
            cfg[k] = d[k]
        else:
            errors.append("%s: %s" % (k, why))
    why = _cross(cfg)
    if why is not None:
        errors.append(why)
        for k in _CROSS:
            cfg[k] = base[k]
    return cfg, errors


def load(path, last=None):
    # -> (cfg, errors). Never raises. Missing file: the defaults (errors says
    # so). Unreadable or not JSON: last (the running config) or the defaults.
    # Valid JSON: validate() over the defaults, bad keys keep last's values.
    good = DEFAULTS if last is None else last
    try:
        size = os.stat(path)[6]
    except OSError:
        # save() may have been cut between removing the old file and the
        # rename (filesystems without atomic replace): the temp file is whole
        try:
            os.stat(path + ".tmp")
            path = path + ".tmp"
            size = os.stat(path)[6]
        except OSError:
            return dict(DEFAULTS), ["config: no file, using defaults"]
    if size > _MAX_FILE:
        return dict(good), ["config: file too big (%d bytes), keeping last good" % size]
    try:
        with open(path) as f:
            d = json.load(f)
    except Exception as e:  # OSError, ValueError, deep nesting...: a bad file is never fatal
        return dict(good), ["config: bad file (%s), keeping last good" % e]
    if type(d) is not dict:
        return dict(good), ["config: not a JSON object, keeping last good"]
    base = DEFAULTS
    if last is not None:
        # keys the file leaves out take the defaults; keys it gets wrong keep
        # the running values
        base = dict(DEFAULTS)
        for k in d:
            if k in last:
                base[k] = last[k]
    cfg, errors = validate(d, base)
    if _cross(cfg) is not None:
        # base itself mixes two configurations: keep the running one whole
        return dict(good), errors
    return cfg, errors


def configure(app, changes):
    # set_config at the station, all or nothing: validated as apply_changes,
    # saved, and taken by every part without a restart. -> None, or the
    # reason (one line). In place, not on a copy: a copy is one 1 KB block,
    # which a console session's fragmented heap did not have (MemoryError
    # on a flashed board, 384 B the largest free block). Raises OSError when
    # the file cannot be written; nothing has changed then
    cfg = app.cfg
    if type(changes) is not dict or not changes:
        return "changes: must be a non-empty map"
    errors = []
    for k in changes:
        why = _check(k, changes[k])
        if why is not None:
            errors.append("%s: %s" % (k, why))
    if errors:
        return "; ".join(errors)
    old = {}
    for k in changes:
        old[k] = cfg.get(k)
        cfg[k] = changes[k]
    why = _cross(cfg)
    try:
        if why is None:
            save("config.json", cfg)
            old.clear()  # taken
    finally:
        for k in old:  # a rule across keys broken, or not saved: as it was
            cfg[k] = old[k]
    if why is not None:
        return why
    app.gauge.configure(cfg["debounce_ms"], cfg["stuck_ms"])
    if app.level is not None:
        app.level.configure(cfg)
    app.sampler.configure(cfg)
    app.alarms.configure(cfg)
    app.pw.configure(cfg)
    app.retime()
    return None


def apply_changes(cfg, changes):
    # set_config, all or nothing: -> (new cfg, None) or (None, "reason")
    if type(changes) is not dict or not changes:
        return None, "changes: must be a non-empty map"
    new, errors = validate(changes, cfg)
    if errors:
        return None, "; ".join(errors)
    return new, None


def get(cfg, names):
    # get_config: -> (map of the keys' values, None) or (None, "reason");
    # an empty list is every key. The key is never returned. The map is a
    # View of cfg, encoded straight into the result frame: a dict of
    # the whole configuration is one ~1 KB block (MemoryError on 128K).
    if not names:
        names = [k for k in cfg if k not in SECRET]
    else:
        for k in names:
            if type(k) is not str or k not in cfg:
                return None, "%s: unknown key" % (k,)
        names = list(names)  # View sorts its keys in place
    return View(cfg, names), None


class View:
    # a text-keyed map that cbor.put encodes straight from cfg: keys (sorted
    # here in place, a repeat once) -> cfg[k], "***" for a SECRET key
    def __init__(self, cfg, keys):
        self.cfg = cfg
        self.keys = keys

    def put(self, buf, p):
        from cbor import _tkey, head, put, put_str
        ks = self.keys
        ks.sort(key=_tkey)
        n = 0
        for i in range(len(ks)):
            if i == 0 or ks[i] != ks[i - 1]:
                n += 1
        p = head(buf, p, 0xA0, n)
        for i in range(len(ks)):
            k = ks[i]
            if i == 0 or k != ks[i - 1]:
                p = put_str(buf, p, k)
                p = put(buf, p, "***" if k in SECRET else self.cfg[k])
        return p


def save(path, cfg):
    # Atomic: write everything to a temp file, then rename over the old one
    # (littlefs replaces atomically), so a power cut leaves the old file or
    # the new one, never half. Only keys that differ from the defaults are
    # written, so a firmware update's new defaults reach unchanged keys.
    # Raises OSError (flash full ...): the caller answers "failed".
    d = {}
    for k in cfg:
        if k in DEFAULTS and cfg[k] != DEFAULTS[k]:
            d[k] = cfg[k]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(d))
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT-like filesystems refuse to rename over a file: load() falls
        # back to the temp file if the cut comes between these two calls
        os.remove(path)
        os.rename(tmp, path)


def key_bytes(cfg):
    # the HMAC key as 32 bytes, or None when not provisioned
    k = cfg["key"]
    if not k:
        return None
    import binascii
    return binascii.unhexlify(k)
