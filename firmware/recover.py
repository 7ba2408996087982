# hydrolink queue code that runs at boot or rarely: reading the state and
# the segments back, repairs, dropping the oldest segment, giving a frame
# up. Imported by store.py when needed and dropped after (its code would
# otherwise cost heap all day).
from micropython import const
import json
import os

from store import N_COUNTERS

_REC = const(16)  # store.py's record size and records per segment (its layout)
_PER = const(256)


def load(st):
    # the state file and the segments on flash into Store st (at boot)
    root = st.root
    s = None
    st.hw = 0
    try:
        with open(root + "/hw") as f:
            st.hw = int(f.read())
    except (OSError, ValueError):
        pass
    lost = st.hw  # numbers were used: a missing state is a lost one
    for name in ("state", "state.tmp"):
        try:
            with open(root + "/" + name) as f:
                s = json.load(f)
            break
        except OSError:
            pass
        except ValueError:
            lost = 1
    if type(s) is dict:
        lost = 0
    else:
        s = {}
    st.seq = s.get("seq", 1)
    st.top = s.get("top", 0)
    st.un = s.get("un", [])
    st.fl = s.get("fl", [])
    st.drop = s.get("drop", 0)
    st.cmd = s.get("cmd", 0)
    st.res = s.get("res", [])
    c = s.get("cnt", [])
    st.cnt = [0] * N_COUNTERS
    for i in range(min(len(c), N_COUNTERS)):
        st.cnt[i] = c[i]
    st.boff = s.get("boff", 0)
    st.clk = s.get("clk", 0)
    st.extra = s.get("x", {})  # small persisted values for the app
    # segments and in-flight frame files on flash
    segs = []
    keep = {}
    for e in st.fl:
        keep[e[0]] = 1
        while len(e) < 6:
            e.append(0)  # [seq, a, b, type, tries, dropped count it carries]
    top_f = 0
    for name in os.listdir(root):
        k = name[1:]
        if not k.isdigit():
            continue  # state, state.tmp, hw, a segment's .t rewrite
        if name[0] == "g":
            segs.append(int(k))
        elif name[0] == "f":
            if int(k) >= top_f:
                top_f = int(k) + 1
            if int(k) not in keep:
                os.remove(root + "/" + name)  # orphan: written, never sent
    segs.sort()
    if segs:
        st.first = segs[0]
        last = segs[-1]
        st.tail = last * _PER + _scan(st, last)
    else:
        st.first = st.top // _PER
        st.tail = st.top
    # rare repairs
    if lost:
        # both state files unreadable: never reuse a seq (the high-water mark
        # of store._HW, frame files, a margin), and send everything kept again
        # (duplicates at the host rather than a reading lost)
        st.seq = max(st.hw, top_f + 64, 64)
        st.top = st.first * _PER
        print("store: state lost, seq %d" % st.seq)
    if st.tail < st.top:
        # flash lost records the state already handed out: pad the tail
        # segment with invalid records up to top, so that record r stays at
        # its offset in its segment (appends go to the end of the file)
        k = st.top // _PER
        if st.tail < k * _PER:
            st.tail = k * _PER
        b = st._tmp
        for i in range(_REC):
            b[i] = 0  # the CRC of zeros is not 0: never a valid record
        with open("%s/g%d" % (st.root, k), "ab") as f:
            for i in range(st.top - st.tail):
                f.write(b)
        print("store: padded g%d to %d" % (k, st.top))
        st.tail = st.top
        if not segs:
            st.first = k


def _scan(st, k):
    # number of good records in segment k; a bad tail is cut off
    p = "%s/g%d" % (st.root, k)
    n = os.stat(p)[6] // _REC
    good = n
    b = st._tmp
    with open(p, "rb") as f:
        for i in range(n):
            f.readinto(b)
            if not st._crc_ok(b):
                good = i
                break
    if good != n or os.stat(p)[6] != n * _REC:
        with open(p, "rb") as f:
            data = f.read(good * _REC)
        with open(p + ".t", "wb") as f:
            f.write(data)
        os.rename(p + ".t", p)
    return good


def drop_segment(st):
    # the bound is reached: the oldest segment goes; its unsent readings
    # are counted, never silently lost
    a = st.first * _PER
    b = a + _PER
    n = 0
    un = []
    for x in st.un:
        lo = x[0] if x[0] > a else a
        hi = x[1] if x[1] < b else b
        if hi > lo:
            n += hi - lo
        if x[1] > b:
            un.append([x[0] if x[0] > b else b, x[1]])
    st.un = un
    if st.top < b:
        lo = st.top if st.top > a else a
        n += (b if b < st.tail else st.tail) - lo
        st.top = b if b < st.tail else st.tail
    if n:
        st.drop += n
        st.cnt[6] += n
    st.save()
    try:
        os.remove("%s/g%d" % (st.root, st.first))
    except OSError:
        pass
    st.first += 1


def give_up(st, e):
    # in-flight entry e leaves the table, counted (12); its readings are
    # queued again (those whose segment is gone are lost: counted as dropped)
    if e not in st.fl:
        return
    st.fl.remove(e)
    st.cnt[12] += 1
    st.drop += e[5]  # the next report carries the dropped count it carried
    a = e[1]
    f = st.first * _PER
    if a < f < e[2] or a < e[2] <= f:
        n = (f if f < e[2] else e[2]) - a
        st.drop += n
        st.cnt[6] += n
        a = f
    if a < e[2]:
        st._add_un(a, e[2])
    st.save()
    try:
        os.remove(st.frame_path(e[0]))
    except OSError:
        pass
