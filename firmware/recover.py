# hydrolink queue repairs, rarely needed: imported by store.py when they are
# and dropped after (their code would otherwise cost heap all day).
from micropython import const

_REC = const(16)  # store.py's record size and records per segment (its layout)
_PER = const(256)


def load(st, lost, top_f, segs):
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
        import os
        os.remove(st.frame_path(e[0]))
    except OSError:
        pass
