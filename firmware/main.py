# hydrolink station entry point: pick the board, start the app.
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

import asyncio  # noqa: E402
from station import Station  # noqa: E402

gc.collect()
board = Board()
app = Station(board)
try:
    asyncio.run(app.main())
except MemoryError:
    print("MemoryError")
    raise
