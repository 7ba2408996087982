# hydrolink persistent queue on flash (littlefs2). Every reading is appended
# here (and synced) before anything else happens to it, and stays until an
# ACK covers it.
#
# Files, all under q/:
#   g<k>   segment k: records k*256 .. k*256+255, fixed 16-byte records
#          <t u32, value i32, interval u32, element u8, quality u8, crc16>
#          appended; a record is committed when the append is synced. The
#          CRC catches a torn append (littlefs already rolls an unsynced
#          append back; the CRC is for flash that does not).
#   f<seq> an in-flight frame, raw bytes exactly as first sent: a retransmit
#          (also after a reboot) is byte-identical (SPEC §6).
#   state  JSON, replaced atomically (littlefs commits a file on close): next seq,
#          which records are unsent / in which in-flight frame, the dropped
#          count still to report, command ids run, counters, backoff.
# Write order makes a power cut at any instant safe: a frame file is written
# before the state that names it (an orphan is deleted at boot, its seq was
# never sent); a segment is deleted only after the state stops needing it.
# Seq numbers: the next seq is in the state, and a frame is sent only after
# the state holding its seq is on flash, so no number is ever used twice.
#
# Record numbers r = 0, 1, 2 ... Records >= top have not been put in any
# frame; below top, "un" lists the unsent ranges and "fl" the in-flight
# frames [seq, a, b, type]; anything else below top is acknowledged and kept
# as history (for the resend command) until the byte bound needs its segment.
# What only the status report and the resend command need (the oldest
# unsent reading's time, queueing a time range again) is in service.py:
# its code then costs heap only while they run. Reading the state back at
# boot, the repairs, dropping the oldest segment and giving a frame up are in
# recover.py, for the same reason.
# The bound counts segments: when a new one would exceed it, the oldest goes,
# and every unsent reading in it is counted in "drop" for the next report.
from micropython import const
import binascii
import json
import os
import struct
import sys

_REC = const(16)
_PER = const(256)  # records per segment: one 4 KB flash block
_SEG = const(4096)
_FMT = "<IiIBB"
_MAX_FLIGHT = const(16)
_MAX_BATCH = const(96)  # records per frame: 96 x 23 B of arrays (4 hours of 5-min data)
N_COUNTERS = const(13)  # SPEC §8 counter ids 1..11, and 12: in-flight frames given up or evicted
_HW = const(256)  # seq high-water mark step (file "hw"): a lost state never reuses a number
_MAX_TRIES = const(32)  # sends of a frame with no ACK at all before it is given up: ~7 h with
# the default backoff (10 s doubling, 900 s cap); an outage longer than that costs the
# frames without readings (status, alarm, result: counted), data frames are rebuilt

MISSING = const(3)
FAULT = const(4)


class Store:
    # read back at boot by recover.load (the board compiles these
    # annotations to nothing)
    hw: int
    seq: int
    top: int
    un: list
    fl: list
    drop: int
    cmd: int
    res: list
    cnt: list
    boff: int
    clk: int
    extra: dict
    first: int
    tail: int

    def __init__(self, max_bytes, trace=None, root="q"):
        self.root = root
        self.trace = trace
        self.max_segs = max_bytes // _SEG
        if self.max_segs < 2:
            self.max_segs = 2
        self._b = bytearray(_REC)
        self._tmp = bytearray(_REC)
        self._f = None  # open tail segment
        self.peak = None  # heap probe at the busiest moment (station.peak)
        # one frame's records, read once per build
        import array
        self._t = array.array("i", bytes(4 * _MAX_BATCH))
        self._v = array.array("i", bytes(4 * _MAX_BATCH))
        self._iv = array.array("i", bytes(4 * _MAX_BATCH))
        self._el = bytearray(_MAX_BATCH)
        self._q = bytearray(_MAX_BATCH)
        self._sv = array.array("i", bytes(4 * _MAX_BATCH))  # series values, grouped
        self._sq = bytearray(_MAX_BATCH)
        try:
            os.mkdir(root)
        except OSError:
            pass
        # the state and the segments are read at boot only: that code
        # (recover.py) is dropped after, like the rare repairs
        import recover
        recover.load(self)
        del sys.modules["recover"]

    # ---- state ---------------------------------------------------------
    def save(self):
        st = {
            "seq": self.seq, "top": self.top, "un": self.un, "fl": self.fl,
            "drop": self.drop, "cmd": self.cmd, "res": self.res, "cnt": self.cnt,
            "boff": self.boff, "clk": self.clk, "x": self.extra,
        }
        # rewritten in place: a littlefs file changes only when it is closed
        # (copy-on-write), so a cut before that leaves the old state whole.
        # One metadata commit, where a temp file and a rename took three and
        # two lookups more (sim board, 30 days: 1,200 block reads a save by
        # day 3, 250 now; less flash wear and awake time on a board too).
        # The text is made before the open: a MemoryError after it would
        # close, and so commit, the file truncated (a failed write is not
        # committed: littlefs skips the sync of a file that erred)
        text = json.dumps(st)
        with open(self.root + "/state", "w") as f:
            f.write(text)

    @staticmethod
    def _crc_ok(b):
        c = binascii.crc32(memoryview(b)[:14]) & 0xFFFF
        return b[14] == c & 0xFF and b[15] == c >> 8

    # ---- appending -------------------------------------------------------
    def append(self, el, t, v, q, iv):
        # commit one reading; returns its record number
        r = self.tail
        if r % _PER == 0:
            self._open_segment(r // _PER)
        b = self._b
        struct.pack_into(_FMT, b, 0, t, 0 if v is None else v, iv, el, q)
        c = binascii.crc32(memoryview(b)[:14]) & 0xFFFF
        b[14] = c & 0xFF
        b[15] = c >> 8
        f = self._f
        if f is None:
            f = self._f = open("%s/g%d" % (self.root, r // _PER), "ab")
        f.write(b)
        f.flush()  # littlefs sync: committed from here on
        self.tail = r + 1
        if self.trace:
            self.trace(el, t, v, q)
        return r

    def _open_segment(self, k):
        if self._f:
            self._f.close()
            self._f = None
        if k - self.first + 1 > self.max_segs:
            # the bound is reached (twice a day once the kept history fills it)
            import recover
            while k - self.first + 1 > self.max_segs:
                recover.drop_segment(self)
            del sys.modules["recover"]

    def _load_batch(self, a, b):
        # records a..b-1 into the batch arrays; returns how many were read
        n = 0
        r = a
        buf = self._tmp
        while r < b:
            k = r // _PER
            e = (k + 1) * _PER if (k + 1) * _PER < b else b
            try:
                f = open("%s/g%d" % (self.root, k), "rb")
            except OSError:
                return n  # a lost segment: unreadable like a bad record
            with f:
                f.seek((r % _PER) * _REC)
                while r < e:
                    if f.readinto(buf) != _REC or not self._crc_ok(buf):
                        return n
                    t, v, iv, el, q = struct.unpack_from(_FMT, buf)
                    self._t[n] = t
                    self._v[n] = v
                    self._iv[n] = iv
                    self._el[n] = el
                    self._q[n] = q
                    n += 1
                    r += 1
        return n

    # ---- bookkeeping ------------------------------------------------------
    def depth(self):
        n = self.tail - self.top
        for x in self.un:
            n += x[1] - x[0]
        for e in self.fl:
            n += e[2] - e[1]
        return n

    def is_ours(self, seq):
        # downlink rule (SPEC §6): one of our last 16 numbers, or in flight
        if self.seq - 16 <= seq < self.seq:
            return True
        for e in self.fl:
            if e[0] == seq:
                return True
        return False

    # ---- frames --------------------------------------------------------
    def frame_path(self, seq):
        return "%s/f%d" % (self.root, seq)

    def _commit_frame(self, buf, n, ft, a, b, d=0):
        # frame file first, then the state that names it and moves seq on
        seq = self.seq
        if seq >= self.hw:
            self.hw = seq + _HW
            with open(self.root + "/hw", "w") as f:
                f.write(str(self.hw))
        with open(self.frame_path(seq), "wb") as f:
            f.write(memoryview(buf)[:n])
        self.seq = seq + 1
        self.fl.append([seq, a, b, ft, 0, d])
        self.save()
        return seq

    def make_frame(self, ft, encode, buf):
        # a frame without readings (alarm without new values, status, result,
        # test): encode(buf, seq) -> length. Evicts the oldest such frame if
        # the in-flight table is full. Returns the seq.
        if len(self.fl) >= _MAX_FLIGHT:
            for e in self.fl:
                if e[1] == e[2]:
                    self.give_up(e)  # counted (12)
                    break
        n = encode(buf, self.seq)
        return self._commit_frame(buf, n, ft, 0, 0)

    def make_records_frame(self, ft, newest, encode, buf, max_frame):
        # a frame carrying readings: newest=True takes the newest unsent ones
        # (>= top), else the oldest unsent range (backfill). encode(buf, seq,
        # series, dropped) -> length or raises Oversize; the batch shrinks
        # until the frame fits in max_frame. Returns the seq, or None when
        # there is nothing to send (or no room in flight).
        if len(self.fl) >= _MAX_FLIGHT:
            return None
        if newest:
            if self.tail <= self.top:
                return None
            b = self.tail
            a = b - _MAX_BATCH if b - _MAX_BATCH > self.top else self.top
        else:
            if not self.un:
                return None
            a, b = self.un[0]
            if b - a > _MAX_BATCH:
                b = a + _MAX_BATCH
        from cbor import FrameError  # Oversize's base
        while True:
            n = self._load_batch(a, b)
            if n < b - a:
                # an unreadable record (bad CRC): send what precedes it, skip it
                if n == 0:
                    self._forget(a, a + 1)
                    return None
                b = a + n
            series = self._series(n)
            if self.peak:
                self.peak()
            try:
                ln = encode(buf, self.seq, series, self.drop)
                if ln <= max_frame:
                    break
            except (FrameError, IndexError):
                pass
            m = (b - a) * 3 // 4
            if m < 1:
                return None
            if newest:
                a = b - m
            else:
                b = a + m
        series = None
        # the frame holds a..b: move the bookkeeping in the same state write
        if newest:
            if a > self.top:
                self._add_un(self.top, a)  # older part of the newest: backfill
            self.top = self.tail if b == self.tail else b
        else:
            self._cut_un(a, b)
        d = self.drop
        self.drop = 0
        return self._commit_frame(buf, ln, ft, a, b, d)

    def _series(self, n):
        # records of the batch -> series (element, interval, start, values,
        # quality or None) as memoryview slices of two preallocated arrays
        # (no lists: a 160-reading frame must not fragment a board heap),
        # grouped by element and interval; a gap in time starts another
        # series (nothing is invented). Slots without a value hold 0: the
        # encoder writes the previous value there (SPEC §5.2).
        keys = []
        for i in range(n):
            k = self._el[i] * 100000 + self._iv[i]
            if k not in keys:
                keys.append(k)
        sv = self._sv
        sq = self._sq
        out = []
        p = 0
        for k in keys:
            a = p
            t0 = nxt = 0
            for i in range(n):
                if self._el[i] * 100000 + self._iv[i] != k:
                    continue
                t = self._t[i]
                if p > a and t != nxt:
                    out.append(self._one(k, t0, a, p))
                    a = p
                if p == a:
                    t0 = t
                q = self._q[i]
                sv[p] = 0 if q == MISSING or q == FAULT else self._v[i]
                sq[p] = q
                p += 1
                nxt = t + self._iv[i]
            if p > a:
                out.append(self._one(k, t0, a, p))
        return out

    def _one(self, k, t0, a, b):
        good = True
        for i in range(a, b):
            if self._sq[i]:
                good = False
                break
        return (k // 100000, k % 100000, t0, memoryview(self._sv)[a:b],
                None if good else memoryview(self._sq)[a:b])

    def _add_un(self, a, b):
        self.un.append([a, b])
        self.un.sort()
        m = []
        for x in self.un:
            if m and x[0] <= m[-1][1]:
                if x[1] > m[-1][1]:
                    m[-1][1] = x[1]
            else:
                m.append(x)
        self.un = m

    def _cut_un(self, a, b):
        un = []
        for x in self.un:
            if x[1] <= a or x[0] >= b:
                un.append(x)
                continue
            if x[0] < a:
                un.append([x[0], a])
            if x[1] > b:
                un.append([b, x[1]])
        self.un = un

    def _forget(self, a, b):
        self._cut_un(a, b)
        if self.top == a:
            self.top = b
        self.save()

    def tried(self, e):
        # one more send of in-flight entry e without its ACK; the last one
        # gives it up (a frame the host never acknowledges must not block)
        e[4] += 1
        if e[4] >= _MAX_TRIES:
            self.give_up(e)

    def give_up(self, e):
        # e leaves the table, counted (12); its readings are queued again
        import recover
        recover.give_up(self, e)
        del sys.modules["recover"]

    def frame(self, seq, buf):
        # the stored bytes of in-flight frame seq into buf; -> length or 0
        try:
            with open(self.frame_path(seq), "rb") as f:
                return f.readinto(buf)
        except OSError:
            return 0

    def ack(self, seqs):
        # ACKed seqs leave the table; -> how many were ours
        n = 0
        gone = []
        for s in seqs:
            for i in range(len(self.fl)):
                if self.fl[i][0] == s:
                    self.fl.pop(i)
                    gone.append(s)
                    n += 1
                    break
        if n:
            for e in self.fl:
                e[4] = 0  # the host answers: the others' tries start again
            self.save()
            for s in gone:
                try:
                    os.remove(self.frame_path(s))
                except OSError:
                    pass
        return n
