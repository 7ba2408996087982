# Sim board "ROM": what the ESP32 bootloader and port do before main.py.
# Mounts the flash image (a littlefs2 image file built by sim/vboard.py)
# through a block device over the file, makes it the working directory and
# the import path, then imports main from it. Run on the unix port:
#   HL_FLASH=img HL_PORT=n micropython -X heapsize=128K -c "import simboot"
# with this module's .mpy on MICROPYPATH. Not copied to the flash image.
# With HL_REPL set it runs the board's REPL (boards/simrepl.py) instead.
import os
import sys
import vfs


class FileBlockDev:
    # the extended block protocol of os.VfsLfs2 over an image file. The
    # unix port's files are unbuffered: each writeblocks is one write(2),
    # which a kill -9 never interrupts part-way. So a simulated power cut
    # lands between two block writes (littlefs's copy-on-write and commit
    # order are exercised), never inside one: a torn or half-programmed
    # block, as a real power cut can leave, is not tested by the cut tests.
    def __init__(self, path, bs):
        self.f = open(path, "r+b")
        self.bs = bs
        self.f.seek(0, 2)
        self.pos = self.f.tell()  # the file's offset: a seek only when it moves
        self.n = self.pos // bs

    # littlefs reads a metadata log and a file's blocks front to back, most
    # of its reads start where the last one ended (60% of them over a busy
    # day): those need no lseek(2). A Python call per read stays, as the
    # ESP32 driver's read has no cache in the Python heap either
    def readblocks(self, b, buf, off=0):
        p = b * self.bs + off
        f = self.f
        if p != self.pos:
            f.seek(p)
        self.pos = p + f.readinto(buf)

    def writeblocks(self, b, buf, off=None):
        p = b * self.bs + (off or 0)
        f = self.f
        if p != self.pos:
            f.seek(p)
        self.pos = p + f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        return 0  # init, deinit, sync, erase: nothing to do for a file


def boot():
    bs = int(os.getenv("HL_BS") or "4096")
    bdev = FileBlockDev(os.getenv("HL_FLASH") or "flash.img", bs)
    fs = vfs.VfsLfs2(bdev, readsize=64, progsize=64, lookahead=32)  # type: ignore[abstract,arg-type]
    vfs.mount(fs, "/flash")
    os.chdir("/flash")
    sys.path.clear()
    sys.path.append("/flash")
    sys.path.append("/flash/lib")
    sys.path.append(".frozen")


_REPL = os.getenv("HL_REPL")
if _REPL:
    import simrepl  # type: ignore[import-not-found]  # the USB REPL (sim/repl.py): from the ROM, before the path is the flash's
boot()
if _REPL:
    simrepl.repl()
else:
    import main  # noqa: E402,F401
