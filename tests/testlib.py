"""tests/testlib.py - result lines in the runner's format for Python tests.

Use `@case` on functions and call `run_all(globals())`; an AssertionError or
any exception is a FAIL with its message, `Skip` is a skip.
"""
import os
import sys
import traceback

PRBOT = os.environ.get("PRBOT", "./prbot")
TESTDATA = os.environ.get("PRBOT_TESTDATA", os.path.join("..", "shared", "testdata"))
_cases = []


class Skip(Exception):
    pass


def case(fn):
    _cases.append(fn)
    return fn


def run_all():
    failed = 0
    only = os.environ.get("TEST_CASE")
    for fn in _cases:
        if only and only not in fn.__name__:
            continue
        try:
            fn()
            print(f"ok {fn.__name__}", flush=True)
        except Skip as e:
            print(f"skip {fn.__name__}: {e}", flush=True)
        except Exception as e:  # noqa: BLE001 - every error is a test failure
            failed += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            msg = str(e).replace("\n", " ")[:300]
            print(f"FAIL {fn.__name__}: {where.filename}:{where.lineno}: {type(e).__name__}: {msg}", flush=True)
            traceback.print_exc(file=sys.stderr)
    sys.exit(1 if failed else 0)
