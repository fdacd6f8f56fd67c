"""The heavy stack is imported once with collection paused and then frozen, once per process."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import gc
from cnnlab.startup import heavy_imports

with heavy_imports():
    assert not gc.isenabled()  # no collection walks the objects the imports create
    import json
frozen = gc.get_freeze_count()
assert frozen > 0 and gc.isenabled()
with heavy_imports():
    assert gc.isenabled()  # the second time is an ordinary import
    import csv
assert gc.get_freeze_count() == frozen  # objects made since are collected as usual
print("ok")
"""


def test_heavy_imports_pause_collection_then_freeze_once():
    # A fresh interpreter: freezing is per process and must not depend on earlier tests.
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
