# Tiny test runner for the pure firmware logic: the same script runs on the
# MicroPython unix port and on CPython (STYLE tier 1). run(globals()) calls
# every test_* function in name order, prints each failure, and ends with
# one line "N passed, M failed" that tests/test_firmware_logic.py parses
# (exit status 1 if any failed).
import sys


def raises(exc, fn, *args):
    # the exception fn(*args) raised (it must raise exc)
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


def run(g):
    names = sorted(k for k in g if k.startswith("test_"))
    passed = 0
    failed = 0
    for name in names:
        try:
            g[name]()
            passed += 1
        except Exception as e:  # one failing test never hides the others
            failed += 1
            print("FAIL", name)
            if hasattr(sys, "print_exception"):
                sys.print_exception(e)
            else:
                import traceback
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    if failed:
        sys.exit(1)


def on_micropython():
    # heap figures exist only there
    return sys.implementation.name == "micropython"
