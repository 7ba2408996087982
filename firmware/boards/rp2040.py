# RP2040 board: a stub that keeps the port possible. Same interface as
# boards/esp32.py; what differs on the RP2040: no lightsleep wake on a pin
# in MicroPython (use time.sleep_ms), reset causes machine.PWRON_RESET /
# WDT_RESET only, ADC is 12-bit read_u16 with a 3.3 V reference (no
# read_uv: convert), and littlefs2 is mounted at / by the port.
from boards.esp32 import Board as _Esp32Board

NAME = "rp2040"


class Board(_Esp32Board):
    pass  # not wired yet: pins, ADC conversion and sleep differ (see above)
