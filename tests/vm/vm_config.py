# config.py on the VM and on CPython: validation with one reason per bad key,
# all-or-nothing changes, load that keeps the last good configuration, and a
# save that a power cut cannot leave half written.
# argv[1]: a scratch directory (default /tmp).
import json
import os
import sys

import config
from tinytest import raises, run

DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
PATH = DIR + "/hl_config.json"
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def clean():
    for p in (PATH, PATH + ".tmp"):
        if exists(p):
            os.remove(p)


def write(text, path=PATH):
    with open(path, "w") as f:
        f.write(text)


def test_defaults_are_valid_and_documented_keys():
    cfg, errors = config.validate({})
    assert errors == [] and cfg == config.DEFAULTS
    assert cfg["sample_interval"] == 60 and cfg["record_interval"] == 300
    assert cfg["report_interval"] == 3600
    assert config._cross(config.DEFAULTS) is None


def test_bad_type_and_range_one_reason_per_key():
    cfg, errors = config.validate({
        "station": 42, "sample_interval": "60", "debounce_ms": -1, "cal_gain": True,
        "level_sensor": "sonar", "key": "xyz", "bogus": 1, "tip_tenths": 5,
    })
    assert cfg["station"] == 42 and cfg["tip_tenths"] == 5  # good keys are taken
    assert cfg["sample_interval"] == 60 and cfg["debounce_ms"] == 200  # bad ones are not
    assert cfg["level_sensor"] == "4-20" and cfg["cal_gain"] == 10000
    assert len(errors) == 6, errors
    text = "\n".join(errors)
    for k in ("sample_interval: must be an integer", "debounce_ms: must be 1..2000",
              "cal_gain: must be an integer", "level_sensor: must be one of",
              "key: must be 64 hex digits", "bogus: unknown key"):
        assert k in text, (k, text)
    for e in errors:
        assert "\n" not in e


def test_cross_key_rules():
    for bad in ({"record_interval": 7}, {"report_interval": 1000},
                {"sample_interval": 7}, {"median_n": 6},
                {"rain_window_s": 1000}, {"level_rise_window_s": 300 * 289},
                {"batt_critical_mv": 11500}, {"qc_level_min_mm": 200000},
                {"level_4ma_mm": 10000}, {"retry_base_s": 1000}):
        cfg, errors = config.validate(bad)
        assert len(errors) == 1, (bad, errors)
        assert cfg == config.DEFAULTS, bad  # the rule's keys keep their base values
    cfg, errors = config.validate({"record_interval": 600, "report_interval": 1800,
                                   "shed_report_interval": 7200, "rain_window_s": 3600})
    assert errors == [] and cfg["record_interval"] == 600


def test_null_disables_only_alarm_keys():
    cfg, errors = config.validate({"level_alarm_mm": 70000, "rain_alarm_tenths": None})
    assert errors == [] and cfg["rain_alarm_tenths"] is None
    cfg, errors = config.validate({"record_interval": None})
    assert errors == ["record_interval: must be an integer"]


def test_apply_changes_all_or_nothing():
    cfg, _ = config.validate({"station": 7})
    snapshot = dict(cfg)
    new, why = config.apply_changes(cfg, {"report_interval": 7200, "debounce_ms": 0})
    assert new is None and why.startswith("debounce_ms: must be"), why
    assert cfg == snapshot  # untouched
    new, why = config.apply_changes(cfg, {"report_interval": 7200, "level_alarm_mm": 70000})
    assert why is None and new["report_interval"] == 7200 and new["level_alarm_mm"] == 70000
    assert new["station"] == 7 and cfg == snapshot
    new, why = config.apply_changes(new, {"record_interval": 900})  # 7200 % 900 == 0, 3600 % 900 ...
    assert why is None, why
    new2, why = config.apply_changes(new, {"record_interval": 1800})  # rain window 1800: ok
    assert why is None
    assert config.apply_changes(new2, {"record_interval": 86400})[0] is None  # report 7200 % 86400
    assert config.apply_changes(cfg, {})[0] is None
    assert config.apply_changes(cfg, [1])[0] is None


def test_get_config_hides_the_key():
    cfg, _ = config.validate({"key": KEY, "station": 9})
    # a view of cfg that cbor.put encodes into the result frame (masking the
    # key there: tests/firmware/test_station_features.py)
    out, why = config.get(cfg, [])
    assert why is None and out.cfg is cfg and "key" not in out.keys
    assert "station" in out.keys and len(out.keys) == len(cfg) - len(config.SECRET)
    out, why = config.get(cfg, ["key", "station"])
    assert why is None and out.keys == ["key", "station"]
    assert config.get(cfg, ["nope"]) == (None, "nope: unknown key")
    assert config.key_bytes(cfg) == bytes(range(0, 256, 17)) * 2
    assert config.key_bytes(config.DEFAULTS) is None


def test_load_missing_file_gives_defaults():
    clean()
    cfg, errors = config.load(PATH)
    assert cfg == config.DEFAULTS and len(errors) == 1 and "no file" in errors[0]


def test_save_load_roundtrip_writes_only_changes():
    clean()
    cfg, _ = config.validate({"station": 123, "key": KEY, "level_alarm_mm": 70000})
    config.save(PATH, cfg)
    with open(PATH) as f:
        assert json.load(f) == {"station": 123, "key": KEY, "level_alarm_mm": 70000}
    got, errors = config.load(PATH)
    assert errors == [] and got == cfg


def test_broken_json_keeps_last_good():
    clean()
    last, _ = config.validate({"station": 5, "report_interval": 7200})
    for text in ('{"station": 5, "report_int', "", "[1, 2]", "\x00\xff", "[" * 2000):
        write(text)
        cfg, errors = config.load(PATH, last)
        assert cfg == last, text
        assert len(errors) == 1 and "keeping last good" in errors[0], errors
    cfg, errors = config.load(PATH)  # no last good yet (boot): the defaults
    assert cfg == config.DEFAULTS and errors


def test_bad_value_in_file_keeps_last_good_value():
    clean()
    last, _ = config.validate({"station": 5, "debounce_ms": 150, "report_interval": 7200})
    write(json.dumps({"station": 5, "debounce_ms": "fast", "tip_tenths": 5}))
    cfg, errors = config.load(PATH, last)
    assert errors == ["debounce_ms: must be an integer"], errors
    assert cfg["debounce_ms"] == 150  # the running value, not the default
    assert cfg["tip_tenths"] == 5  # the good change is taken
    assert cfg["report_interval"] == 3600  # absent from the file: default
    cfg, errors = config.load(PATH)  # at boot: the default for the bad key
    assert cfg["debounce_ms"] == 200 and cfg["station"] == 5
    write('{"station": 1e999}')
    cfg, errors = config.load(PATH, last)
    assert cfg["station"] == 5 and errors == ["station: must be an integer"]


def test_file_too_big_is_refused():
    clean()
    last, _ = config.validate({"station": 5})
    write('{"station": 6, "x": "' + "a" * 5000 + '"}')
    cfg, errors = config.load(PATH, last)
    assert cfg == last and "too big" in errors[0]


class PowerCut(Exception):
    pass


def test_power_cut_while_writing_leaves_the_old_file():
    clean()
    old, _ = config.validate({"station": 5, "key": KEY})
    config.save(PATH, old)
    new, _ = config.validate({"station": 5, "key": KEY, "report_interval": 7200})
    real_open = open

    class HalfFile:
        # writes half of what it is given, then the power goes
        def __init__(self, f):
            self.f = f

        def write(self, s):
            self.f.write(s[:len(s) // 2])
            self.f.close()
            raise PowerCut()

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    config.open = lambda p, m="r": HalfFile(real_open(p, m)) if "w" in m else real_open(p, m)
    try:
        raises(PowerCut, config.save, PATH, new)
    finally:
        del config.open
    assert exists(PATH + ".tmp")  # the half-written temp file is there ...
    cfg, errors = config.load(PATH)
    assert errors == [] and cfg == old  # ... and ignored: the old file is whole
    config.save(PATH, new)  # the next save overwrites the debris
    assert config.load(PATH) == (new, [])


def test_power_cut_before_rename_leaves_the_old_file():
    clean()
    old, _ = config.validate({"station": 5})
    config.save(PATH, old)

    class CutOs:
        stat = staticmethod(os.stat)
        remove = staticmethod(os.remove)

        @staticmethod
        def rename(a, b):
            raise PowerCut()

    config.os = CutOs
    try:
        raises(PowerCut, config.save, PATH, dict(old, station=6))
    finally:
        config.os = os
    assert config.load(PATH) == (old, [])


def test_filesystem_without_atomic_replace():
    # FAT refuses to rename over a file: save removes, then renames; a cut in
    # between leaves only the complete temp file, which load then uses
    clean()
    old, _ = config.validate({"station": 5})
    config.save(PATH, old)
    new = dict(old, station=6)

    class FatOs:
        stat = staticmethod(os.stat)
        remove = staticmethod(os.remove)
        cut = False

        @staticmethod
        def rename(a, b):
            try:
                os.stat(b)
                raise OSError(17)  # EEXIST
            except OSError as e:
                if e.args and e.args[0] == 17:
                    raise
            if FatOs.cut:
                raise PowerCut()
            os.rename(a, b)

    config.os = FatOs
    try:
        config.save(PATH, new)  # remove + rename, no cut
        assert config.load(PATH) == (new, [])
        FatOs.cut = True
        raises(PowerCut, config.save, PATH, old)
    finally:
        config.os = os
    assert not exists(PATH)  # the old file is gone
    assert config.load(PATH) == (old, [])  # from the whole temp file


def test_every_default_key_has_a_rule():
    for k in config.DEFAULTS:
        assert config._check(k, config.DEFAULTS[k]) is None, k


clean()
try:
    run(globals())
finally:
    clean()
