/* Compiled twins of two hot loops of protocol/codec.py (SPEC.md §4 and §5.2).
 *
 * check_cbor(body)      the body is one CBOR item in the subset and deterministic
 *                       encoding of SPEC §4
 * decode_values(data)   the `values` byte string of a series to a list of ints
 *
 * Both raise protocol.errors.Malformed with the same messages as the Python versions.
 *
 * codec.py holds the pure-Python versions of both (the reference, used when this
 * module is not built); tests/test_speedups.py checks that the two agree on every
 * vector and on random and damaged input. Neither function builds more than the
 * result: check_cbor only walks the bytes, cbor2.loads then builds the objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 16    /* SPEC §4: at most 16 nested arrays and maps */
#define MAX_VALUES 4096 /* SPEC §5.2: values per series */

static PyObject *Malformed; /* protocol.errors.Malformed */

static PyObject *fail(const char *msg) {
    PyErr_SetString(Malformed, msg);
    return NULL;
}

/* One head at b[*p]: major type and argument in the shortest form. 0, or -1 with
 * the error set. Major type 7 is returned with its additional information as is. */
static int head(const uint8_t *b, Py_ssize_t end, Py_ssize_t *p, int *mt, uint64_t *arg) {
    if (*p >= end) {
        fail("body ends inside an item");
        return -1;
    }
    uint8_t ib = b[(*p)++];
    int ai = ib & 0x1f, n;
    *mt = ib >> 5;
    if (*mt == 7 || ai < 24) {
        *arg = (uint64_t)ai;
        return 0;
    }
    switch (ai) {
    case 24: n = 1; break;
    case 25: n = 2; break;
    case 26: n = 4; break;
    case 27: n = 8; break;
    case 31: fail("indefinite length (outside the subset of SPEC §4)"); return -1;
    default: fail("reserved additional information in a CBOR head"); return -1;
    }
    if (end - *p < n) {
        fail("body ends inside an item");
        return -1;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | b[(*p)++];
    if (v < (n == 1 ? 24u : (uint64_t)1 << (4 * n))) {
        fail("integer or length not in its shortest form (SPEC §4)");
        return -1;
    }
    *arg = v;
    return 0;
}

typedef struct {
    uint64_t left;                /* items (arrays) or pairs (maps) still to read */
    int is_map, key_mt;           /* key_mt: -1 before the first key */
    Py_ssize_t key_start, key_end; /* encoding of the previous key */
} Level;

static PyObject *check_cbor(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t end = view.len, p = 0;
    Level stack[MAX_DEPTH];
    int depth = 0, mt;
    uint64_t n;
    const char *err = NULL;
    char msg[64];
    int raised = 0; /* by head(), with its own message */

    for (;;) {
        if (depth) {
            Level *top = &stack[depth - 1];
            top->left--;
            if (top->is_map) { /* a key: unsigned or text, all alike, ascending */
                Py_ssize_t start = p;
                if (head(b, end, &p, &mt, &n) < 0) {
                    raised = 1;
                    break;
                }
                if (mt != 0 && mt != 3) {
                    err = "map keys must be unsigned integers or text";
                    break;
                }
                if (mt == 3) {
                    if ((uint64_t)(end - p) < n) {
                        err = "body ends inside an item";
                        break;
                    }
                    p += (Py_ssize_t)n;
                }
                if (top->key_mt < 0) {
                    top->key_mt = mt;
                } else {
                    if (mt != top->key_mt) {
                        err = "map keys must be all unsigned integers or all text";
                        break;
                    }
                    Py_ssize_t la = top->key_end - top->key_start, lb = p - start;
                    int c = memcmp(b + top->key_start, b + start, (size_t)(la < lb ? la : lb));
                    if (c > 0 || (c == 0 && la >= lb)) {
                        err = "map keys are not in ascending order of their encodings";
                        break;
                    }
                }
                top->key_start = start;
                top->key_end = p;
            }
        }
        if (head(b, end, &p, &mt, &n) < 0) {
            raised = 1;
            break;
        }
        switch (mt) {
        case 0:
            break;
        case 1:
            if (n > (uint64_t)INT64_MAX)
                err = "integer outside 64 bits";
            break;
        case 2:
        case 3:
            if ((uint64_t)(end - p) < n)
                err = "body ends inside an item";
            else
                p += (Py_ssize_t)n;
            break;
        case 4:
        case 5:
            if (depth >= MAX_DEPTH)
                err = "arrays and maps nested deeper than 16";
            else if (n > (uint64_t)(end - p)) /* every item is at least one byte */
                err = "body ends inside an item";
            else if (n) {
                stack[depth++] = (Level){n, mt == 5, -1, 0, 0};
                continue;
            }
            break;
        case 6:
            err = "CBOR tag (outside the subset of SPEC §4)";
            break;
        default: /* 7 */
            if (n == 27) {
                if (end - p < 8)
                    err = "body ends inside an item";
                else
                    p += 8;
            } else if (n < 20 || n > 22) {
                err = "simple value or float other than false, true, null or float64";
            }
        }
        if (err)
            break;
        while (depth && stack[depth - 1].left == 0)
            depth--;
        if (!depth)
            break;
    }
    if (!raised && !err && p != end) {
        PyOS_snprintf(msg, sizeof msg, "%zd bytes after the body", end - p);
        err = msg;
    }
    PyBuffer_Release(&view);
    if (raised)
        return NULL;
    if (err)
        return fail(err);
    Py_RETURN_NONE;
}

/* One LEB128 varint of at most 5 bytes at b[*p]: 0, -1 (longer: error set) or
 * 1 (the data ends inside it). */
static int varint(const uint8_t *b, Py_ssize_t end, Py_ssize_t *p, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        if (shift >= 35) {
            fail("values varint longer than 5 bytes");
            return -1;
        }
        if (*p >= end)
            return 1;
        uint8_t c = b[(*p)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            break;
    }
    *out = v;
    return 0;
}

static int64_t unzigzag(uint64_t z) {
    return (z & 1) ? -(int64_t)((z + 1) >> 1) : (int64_t)(z >> 1);
}

/* The errors come in the reference's order: a long varint or an over-long run at once,
 * then, after the last byte, too many values, a cut varint, a value outside int32. */
static PyObject *decode_values(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t end = view.len, p = 0, count = 0;
    int32_t values[MAX_VALUES];
    PyObject *out = NULL;
    uint64_t t;
    int64_t last = 0;
    int cut = 0, outside = 0, r;

    while (p < end) {
        r = varint(b, end, &p, &t);
        if (r < 0)
            goto done;
        if (r > 0) {
            if (count == 0) {
                fail("values end inside a varint");
                goto done;
            }
            cut = 1;
            break;
        }
        Py_ssize_t run = 1;
        if (count == 0) {
            last = unzigzag(t);
        } else if (t & 1) { /* odd token: (t >> 1) + 1 more values unchanged */
            if (count + (int64_t)(t >> 1) >= MAX_VALUES) {
                fail("more than 4096 values in a series");
                goto done;
            }
            run = (Py_ssize_t)(t >> 1) + 1;
        } else {
            last += unzigzag(t >> 1);
        }
        if (last < INT32_MIN || last > INT32_MAX) {
            outside = 1;
            last = 0; /* the values are refused anyway; the sum stays small */
        }
        for (; run; run--, count++)
            if (count < MAX_VALUES)
                values[count] = (int32_t)last;
    }
    if (count > MAX_VALUES) {
        fail("more than 4096 values in a series");
        goto done;
    }
    if (cut || outside) {
        fail(cut ? "values end inside a varint" : "value outside int32");
        goto done;
    }
    out = PyList_New(count);
    if (!out)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyLong_FromLong(values[i]);
        if (!v) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, v);
    }
done:
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"check_cbor", check_cbor, METH_O,
     "Raise Malformed unless the bytes are one CBOR item in the subset and deterministic "
     "encoding of SPEC §4."},
    {"decode_values", decode_values, METH_O,
     "The values byte string of a series (SPEC §5.2) to a list of ints; Malformed if malformed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "protocol._speedups", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *errors = PyImport_ImportModule("protocol.errors");
    if (!errors)
        return NULL;
    Malformed = PyObject_GetAttrString(errors, "Malformed");
    Py_DECREF(errors);
    if (!Malformed)
        return NULL;
    return PyModule_Create(&module);
}
