"""Files: atomic writes that survive SIGKILL, and loading that never runs code from a file.

Writes: a run killed at any moment leaves the old file or the new one, never half of one.
Loads: safetensors + JSON; legacy .pt/.pth only with allow_legacy, through
torch.load(weights_only=True); hostile pickles are refused and their code never runs;
truncated, corrupt or mismatched files get a one-line error naming the file.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hostile import MARKER, write_hostile_pt, write_hostile_raw
from robustmix.runtime import files
from robustmix import load_checkpoint, save_checkpoint
from robustmix.runtime.errors import RobustmixError

ROOT = Path(__file__).resolve().parents[1]
needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


# robustmix/runtime/files.py loaded on its own (it imports nothing from robustmix): a child starts in
# milliseconds instead of importing torch.
LOAD_FILES = (
    "import importlib.util as u\n"
    f"spec = u.spec_from_file_location('files', {str(ROOT / 'robustmix' / 'runtime' / 'files.py')!r})\n"
    "files = u.module_from_spec(spec); spec.loader.exec_module(files)\n"
)


def child(code: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LOAD_FILES + code], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- atomic writes -----------------------------------------------------------------------------


def test_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.json"
    files.write_json(p, {"x": 1})
    files.write_json(p, {"x": [1, 2]})
    assert json.loads(p.read_text()) == {"x": [1, 2]}
    assert leftovers(p.parent) == []


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permission bits")
def test_written_files_get_the_umask_mode_and_replacements_keep_theirs(tmp_path):
    """A temp file from mkstemp is 0600; results and checkpoints must not end up unreadable to the group."""
    mask = os.umask(0o022)
    try:
        new = files.write_text(tmp_path / "new.txt", "a")
        assert new.stat().st_mode & 0o777 == 0o644
        os.chmod(new, 0o640)
        files.write_text(new, "b")  # replacing keeps the mode the file had
        assert new.stat().st_mode & 0o777 == 0o640 and new.read_text() == "b"
    finally:
        os.umask(mask)


def test_failure_mid_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    p = tmp_path / "a.txt"
    files.write_text(p, "old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        files.write_text(p, "new" * 1000)
    assert p.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_unserialisable_json_leaves_old_file(tmp_path):
    p = tmp_path / "a.json"
    files.write_json(p, {"ok": True})
    with pytest.raises(TypeError):
        files.write_json(p, {"bad": object()})
    assert json.loads(p.read_text()) == {"ok": True}


@needs_sigkill
@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_sigkill_before_rename_keeps_old_file(where, tmp_path):
    """The process dies (SIGKILL, no cleanup runs) after the new bytes are written, before the rename."""
    p = tmp_path / "r.json"
    files.write_text(p, "old")
    code = (
        "import os, signal\n"
        f"os.{where} = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "files.write_text('r.json', 'new' * 100000)\n"
    )
    proc = child(code, tmp_path)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert p.read_text() == "old"


@needs_sigkill
def test_sigkill_at_random_moments_leaves_old_or_new_never_half(tmp_path):
    """A writer alternates two 2 MB contents; it is killed at 8 random moments (seeded)."""
    p = tmp_path / "big.bin"
    a, b = b"A" * 2_000_000, b"B" * 2_000_000
    code = (
        "a, b = b'A' * 2_000_000, b'B' * 2_000_000\n"
        "files.write_bytes('big.bin', a); print('ready', flush=True)\n"
        "while True:\n"
        "    files.write_bytes('big.bin', b); files.write_bytes('big.bin', a)\n"
    )
    rng = random.Random(0)
    for _ in range(8):
        proc = child(code, tmp_path)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.05))
        proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        data = p.read_bytes()
        assert data in (a, b), f"half-written file: {len(data)} bytes"


def test_library_writes_only_through_files_module():
    """Every write in robustmix goes through robustmix.runtime.files (atomic); no direct writes elsewhere."""
    opens = re.compile(r"open\([^)]*['\"][wax]b?\+?['\"]")
    direct = re.compile(r"\.write_(text|bytes)\(|torch\.save\(|\.savefig\((?!buf)|\.to_csv\((?!buf)\s*[^)\s]")
    strings = re.compile(r"f?\"[^\"]*\"|f?'[^']*'")
    offenders = []
    for path in (ROOT / "robustmix").rglob("*.py"):
        if path.name == "files.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if path.name == "gate.py" and "step_summary" in code:
                continue  # $GITHUB_STEP_SUMMARY is appended to by every step: GitHub's contract, not ours
            if (opens.search(code) or direct.search(strings.sub("''", code))) and "files.write_" not in code:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == [], "write through robustmix.runtime.files instead:\n" + "\n".join(offenders)


# --- loading never runs code -------------------------------------------------------------------


@pytest.fixture()
def checkpoint(trained, tmp_path):
    model, meta = trained
    return save_checkpoint(tmp_path / "ck", model, meta)


def as_legacy(folder: Path, state_or_writer) -> Path:
    (folder / "model.safetensors").unlink()
    target = folder / "model.pt"
    if callable(state_or_writer):
        state_or_writer(target)
    else:
        torch.save(state_or_writer, target)
    return target


def test_legacy_state_dict_needs_allow_legacy_then_loads_equal(checkpoint, trained, digits):
    model, _ = trained
    pt = as_legacy(checkpoint, model.state_dict())
    for path in (checkpoint, pt):
        with pytest.raises(RobustmixError, match="allow-legacy"):
            load_checkpoint(path)
    loaded, _ = load_checkpoint(pt, allow_legacy=True)
    x = digits.x_test[:32]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("writer", [write_hostile_pt, write_hostile_raw], ids=["torch.save", "raw-pickle"])
def test_hostile_pickle_is_refused_and_never_runs(writer, checkpoint, monkeypatch):
    monkeypatch.chdir(checkpoint)
    pt = as_legacy(checkpoint, writer)
    with pytest.raises(RobustmixError) as e:
        load_checkpoint(pt, allow_legacy=True)
    assert "model.pt: refused" in str(e.value) and "\n" not in str(e.value)
    assert not (checkpoint / MARKER).exists(), "the pickled code ran"
    # and the file is live: a plain unpickler would have run it (our own payload: it only creates the marker)
    try:
        torch.load(pt, weights_only=False)
    except Exception:  # the payload's return value is not a tensor; the code has run by then
        pass
    assert (checkpoint / MARKER).exists()


def _truncate(f: Path):
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])


def _drop_sha(folder: Path):
    meta = json.loads((folder / "meta.json").read_text())
    del meta["weights_sha256"]
    (folder / "meta.json").write_text(json.dumps(meta))


def _edit_meta(**changes):
    def edit(folder: Path):
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, **changes}))
    return edit


def _corrupt_unhashed(folder: Path):
    _drop_sha(folder)
    w = folder / "model.safetensors"
    w.write_bytes(b"\xff" * 8 + w.read_bytes()[8:])


def _legacy_truncated(folder: Path):
    (folder / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1000)}, folder / "model.pt")
    _truncate(folder / "model.pt")


def _legacy_not_state_dict(folder: Path):
    (folder / "model.safetensors").unlink()
    torch.save([torch.zeros(3)], folder / "model.pt")


DAMAGE = {
    "truncated weights": (lambda d: _truncate(d / "model.safetensors"), "model.safetensors"),
    "corrupt weights, no hash": (_corrupt_unhashed, "model.safetensors"),
    "truncated metadata": (lambda d: _truncate(d / "meta.json"), "meta.json"),
    "metadata not robustmix": (lambda d: (d / "meta.json").write_text("[1, 2]"), "meta.json"),
    "metadata missing keys": (lambda d: (d / "meta.json").write_text('{"format": "robustmix-checkpoint/1"}'), "meta.json"),
    "unknown architecture": (_edit_meta(model="vgg99"), "meta.json"),
    "weights of another architecture": (_edit_meta(model="preact_resnet18"), "model.safetensors"),
    "weights of another class count": (_edit_meta(num_classes=7), "model.safetensors"),
    "legacy truncated": (_legacy_truncated, "model.pt"),
    "legacy not a state dict": (_legacy_not_state_dict, "model.pt"),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_damaged_checkpoint_is_a_one_line_error_naming_the_file(name, trained, tmp_path):
    model, meta = trained
    folder = save_checkpoint(tmp_path / "ck", model, meta)
    damage, culprit = DAMAGE[name]
    damage(folder)
    with pytest.raises(RobustmixError) as e:
        load_checkpoint(folder, allow_legacy=True)
    msg = str(e.value)
    assert "\n" not in msg and str(folder / culprit) in msg, msg


def test_save_over_existing_checkpoint_is_atomic_per_file(trained, tmp_path):
    model, meta = trained
    folder = save_checkpoint(tmp_path / "ck", model, meta)
    save_checkpoint(folder, model, {**meta, "seed": 99})
    assert load_checkpoint(folder)[1]["seed"] == 99
    assert leftovers(folder) == []
    shutil.rmtree(folder)
