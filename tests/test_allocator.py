"""robustmix.runtime.allocator: the CLI keeps freed memory (no page faults on reuse) and changes no number.

Each check runs in a fresh interpreter: malloc's settings are process-wide and last until exit.
"""

import json
import os
import subprocess
import sys

import pytest

from robustmix.runtime.allocator import why_not

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings: Linux only")

# Allocate, free and allocate again a 256 MB block; report the minor page faults of the second
# allocation. glibc's default serves it with mmap and returns it with munmap, so the second one
# faults every page in again (65,536 of 4 KB); kept memory is reused without a fault.
PROBE = """
import json, resource, sys
from robustmix.runtime.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "apply" else False
n = 256 * 2**20
block = bytearray(n); del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = bytearray(n)
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("LD_PRELOAD", "ROBUSTMIX_MALLOC")}
    p = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_kept_memory_is_reused_without_page_faults():
    default, kept = probe("leave"), probe("apply")
    assert kept["applied"] is True
    pages = 256 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert default["faults"] > pages // 2, default  # the control: glibc's default faults the block in again
    assert kept["faults"] < pages // 20, kept


@pytest.mark.parametrize("name, value, reason", [("ROBUSTMIX_MALLOC", "system", "ROBUSTMIX_MALLOC=system"),
                                                 ("MALLOC_MMAP_MAX_", "65536", "MALLOC_MMAP_MAX_ is set"),
                                                 ("LD_PRELOAD", "libjemalloc.so.2", "LD_PRELOAD")])
def test_the_users_choice_wins(monkeypatch, name, value, reason):
    for k in list(os.environ):
        if k.startswith("MALLOC_") or k in ("LD_PRELOAD", "ROBUSTMIX_MALLOC", "GLIBC_TUNABLES"):
            monkeypatch.delenv(k)
    assert why_not() is None
    monkeypatch.setenv(name, value)
    assert reason in why_not()


def test_opting_out_leaves_glibc_as_it_is():
    out = probe("apply", ROBUSTMIX_MALLOC="system")
    assert out["applied"] is False
    assert out["faults"] > 256 * 2**20 // os.sysconf("SC_PAGE_SIZE") // 2


def test_the_command_line_trains_bit_identical_weights_with_and_without(tmp_path):
    """`python -m robustmix train` applies the settings; the weights are the same either way."""
    digests = {}
    for mode in ("kept", "system"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        if mode == "system":
            env["ROBUSTMIX_MALLOC"] = "system"
        out = tmp_path / mode
        p = subprocess.run([sys.executable, "-m", "robustmix", "train", "--dataset", "digits", "--epochs", "1",
                            "--train-subset", "300", "--seed", "3", "--out", str(out)],
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        digests[mode] = json.loads((out / "meta.json").read_text())["weights_sha256"]
    assert digests["kept"] == digests["system"]
