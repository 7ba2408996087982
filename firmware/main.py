# hydrolink station entry point: pick the board, load the configuration,
# start the app.
import micropython

try:
    micropython.alloc_emergency_exception_buf(100)  # tracebacks from IRQ handlers
except AttributeError:
    pass  # the unix port (sim board) has no IRQs and no such buffer

import sys  # noqa: E402
import gc  # noqa: E402

if sys.platform == "esp32":
    from boards.esp32 import Board
elif sys.platform == "rp2":
    from boards.rp2040 import Board
else:
    from boards.sim import Board


def _config():
    # The configuration is read before the runtime is imported and its code
    # is dropped after: config.py is 13 KB of heap on the 64-bit VM, and
    # with it resident beside the runtime the boot peaked at 121 KB (only
    # commands need it again, station.command loads it then)
    import config

    cfg, errs = config.load("config.json")
    for e in errs:
        print(e)
    key = config.key_bytes(cfg)
    del sys.modules["config"]
    return cfg, key


board = Board()
cfg, key = _config()
gc.collect()
import asyncio  # noqa: E402
from station import Station  # noqa: E402

app = Station(board, cfg, key)
cfg = key = None
try:
    asyncio.run(app.main())
except MemoryError:
    print("MemoryError")
    raise
