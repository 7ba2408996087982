"""The technician PIN format (firmware/pin.py): the board verifies what the host writes."""

from __future__ import annotations

import hashlib
import json

from tests import mpvm

SALT = bytes(range(16))


def test_board_accepts_host_pbkdf2_hash_and_rejects_others() -> None:
    cfg = {"pin_salt": SALT.hex(),
           "pin_hash": hashlib.pbkdf2_hmac("sha256", b"482916", SALT, 1000).hex()}
    code = (f"import pin\ncfg = {json.dumps(cfg)}\n"
            "print(1000, pin.check(cfg, '482916'), pin.check(cfg, '482917'), "
            "pin.check(cfg, ''), pin.check({}, '482916'))\n")
    res = mpvm.run(code=code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1000", "True", "False", "False", "False"]


def test_config_validates_pin_fields_and_hides_them() -> None:
    code = ("import config\n"
            "c, e = config.validate({'pin_hash': 'ab', 'pin_salt': '00' * 16})\n"
            "print(e, c['pin_salt'] == '00' * 16)\n"
            "print('pin_hash' in config.SECRET, 'pin_salt' in config.SECRET)\n")
    res = mpvm.run(code=code)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "['pin_hash: must be 64 hex digits (32 bytes)'] True"
    assert lines[1] == "True True"


def test_console_check_agrees_with_pin_py() -> None:
    # firmware/console.py checks the PIN with its own copy of pin.py's loop (no module of
    # its own: qstrs); both must accept exactly the provisioned PIN
    cfg = {"pin_salt": SALT.hex(),
           "pin_hash": hashlib.pbkdf2_hmac("sha256", b"4821", SALT, 1000).hex()}
    code = (f"import console, pin\ncfg = {json.dumps(cfg)}\n"
            "for p in ('4821', '4822', '', '48210', '1' * 17):\n"
            "    print(console.digest(cfg, p), pin.check(cfg, p))\n"
            "print(console.digest({}, '4821'))\n")
    res = mpvm.run(code=code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True"] + ["False", "False"] * 4 + ["False"]
