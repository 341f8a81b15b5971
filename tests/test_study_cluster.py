"""A study's models as jobs through submitit (`robustmix study --executor local|slurm`): the digits study
run as jobs of submitit's local executor, two at a time, one of them SIGKILLed mid-training and another
preempted (SIGUSR2, submitit's requeue signal), leaves every file the sequential run leaves, byte for
byte but for what records wall time or the host and job (tests/study_runs.py says which and why);
the Slurm path builds the job array expected (resources, size, cap, the targets after the surrogate)
without a cluster, through submitit's own mock of sbatch/sacct; a missing submitit is one line."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from robustmix.cli import main
from robustmix.gate.spec import parse_spec
from robustmix.runtime.errors import RobustmixError
from robustmix.study import load_study, parse_study
from study_runs import DIGITS, comparable, run_study

needs_submitit = pytest.mark.skipif(importlib.util.find_spec("submitit") is None,
                                    reason="the cluster extra: pip install -e '.[cluster]' (part of dev)")

SLOTS = ["surrogate-s100", "erm-s0", "erm-s1", "mixup-s0", "mixup-s1", "cutmix-s0"]


class Interrupter(threading.Thread):
    """Sends `signals` ({slot: signal}) to the process of each slot's job once that job has finished one
    training epoch and not yet all of them: the job's pid from DIR/jobs/<slot>.json, its progress from
    the model's log.csv. Records {slot: epochs done when the signal was sent}."""

    def __init__(self, out: Path, signals: dict[str, int]):
        super().__init__(daemon=True)
        self.out, self.todo, self.sent, self.stop = out, dict(signals), {}, threading.Event()

    def run(self) -> None:
        while self.todo and not self.stop.is_set():
            for slot, sig in list(self.todo.items()):
                status, log, model = self.out / "jobs" / f"{slot}.json", self.out / "models" / slot / "log.csv", self.out / "models" / slot
                try:
                    pid = json.loads(status.read_text())["pid"]
                    epochs = len(log.read_text().splitlines()) - 1
                except (OSError, ValueError, KeyError):
                    continue
                if 1 <= epochs < 4 and not (model / "meta.json").exists():
                    os.kill(pid, sig)
                    self.sent[slot] = epochs
                    del self.todo[slot]
            time.sleep(0.005)


@needs_submitit
def test_local_jobs_give_the_sequential_study_even_when_killed_or_preempted(digits_study, tmp_path, capsys):
    out = tmp_path / "jobs-study"
    interrupter = Interrupter(out, {"erm-s1": signal.SIGKILL, "mixup-s0": signal.SIGUSR2})
    interrupter.start()
    capsys.readouterr()
    try:
        assert run_study(DIGITS, "--out", out, "--executor", "local", "--jobs", "2") == 0
    finally:
        interrupter.stop.set()
    err = capsys.readouterr().err
    assert set(interrupter.sent) == {"erm-s1", "mixup-s0"}, (interrupter.sent, err)  # both mid-training
    # SIGKILL: the job ended without a result; the driver submitted the model again, which resumed
    assert "(erm-s1): not done: it was killed or stopped before it finished" in err, err
    assert "submitting again (round 2 of 3): surrogate-s100, erm-s1;" in err, err
    # SIGUSR2: submitit asked the job for its checkpoint and requeued it within the same job
    logs = "".join(p.read_text() for p in (out / "jobs").glob("*_log.out"))  # submitit logs there
    assert "Requeued job" in logs and "this job is preempted" in logs
    for slot in ("erm-s1", "mixup-s0"):
        meta = json.loads((out / "models" / slot / "meta.json").read_text())
        assert meta["resumed_at_epoch"] == interrupter.sent[slot] >= 1, slot  # from its last finished epoch
    # at most two jobs at a time, one thread each (as the sequential run at one thread)
    assert "started job" in err and err.count("started job") == 5 + 1  # five targets, erm-s1 twice
    # provenance: every model says which host and job trained it; the sequential run names no job
    for slot in SLOTS:
        meta = json.loads((out / "models" / slot / "meta.json").read_text())
        assert meta["hostname"] and meta["job_id"].startswith("submitit-local:") and meta["torch_threads"] == 1, slot
        assert json.loads((digits_study / "models" / slot / "meta.json").read_text())["job_id"] is None
        assert json.loads((out / "jobs" / f"{slot}.json").read_text())["state"] == "finished"
    assert json.loads((out / "results" / "paper-erm-s1.json").read_text())["config"]["job_id"].startswith("submitit-local:")
    # the same study: every record, probe, figure and table of the report
    mine, theirs = comparable(out), comparable(digits_study)
    assert sorted(mine) == sorted(theirs) and len(mine) > 50
    assert [name for name in mine if mine[name] != theirs[name]] == []
    for slot in SLOTS:
        assert (out / "models" / slot / "model.safetensors").read_bytes() == (digits_study / "models" / slot / "model.safetensors").read_bytes()
    assert not list((out / "results").glob("*.safetensors"))  # the surrogate's examples, removed once every target has its results


def mocked_slurm():
    """submitit's own mock of srun, sbatch and sacct (submitit.core.test_core.MockedSubprocess): sbatch
    writes nothing anywhere and answers job 12, then 13, ...; sacct says RUNNING once told so."""
    from submitit.core.test_core import MockedSubprocess

    return MockedSubprocess(known_cmds=["srun"])


def sbatch_options(path: Path) -> dict[str, str]:
    return dict(line[len("#SBATCH --"):].partition("=")[::2] for line in path.read_text().splitlines() if line.startswith("#SBATCH --"))


@needs_submitit
def test_slurm_path_submits_the_surrogate_then_a_capped_job_array(tmp_path, capsys):
    """The spec's [cluster] table and the flags over it (--partition replaces the table's) become the sbatch
    files submitit writes: the surrogate's job, then one array of the five targets, two at a time, after it."""
    spec = tmp_path / "spec.toml"
    spec.write_text(DIGITS.read_text() + '\n[cluster]\npartition = "small"\naccount = "lab"\nmem_gb = 16\n'
                                         'setup = ["source .venv/bin/activate"]\nsbatch = { qos = "high" }\n')
    out = tmp_path / "with-table"
    with mocked_slurm().context():
        assert main(["study", str(spec), "--out", str(out), "--executor", "slurm", "--no-wait", "--partition", "gpu",
                     "--gpus-per-job", "1", "--cpus-per-job", "4", "--time-min", "90", "--jobs", "2", "--sbatch", "constraint=a100"]) == 0
    err = capsys.readouterr().err
    assert "submitted job 12: surrogate-s100" in err and "submitted 5 job(s) 13_[0-4%2]: erm-s0, erm-s1, mixup-s0, mixup-s1, cutmix-s0 (after job 12)" in err
    jobs = json.loads((out / "jobs" / "submitted.json").read_text())
    assert jobs == {"executor": "slurm", "jobs": {"surrogate-s100": "12", **{s: f"13_{i}" for i, s in enumerate(SLOTS[1:])}}}
    surrogate, array = sbatch_options(out / "jobs" / "12_submission.sh"), sbatch_options(out / "jobs" / "13_submission.sh")
    common = {"partition": "gpu", "account": "lab", "time": "90", "gpus-per-node": "1", "cpus-per-task": "4", "mem": "16GB",
              "qos": "high", "constraint": "a100", "job-name": "robustmix-with-table"}
    assert {k: surrogate.get(k) for k in common} == common and {k: array.get(k) for k in common} == common
    assert "array" not in surrogate and "dependency" not in surrogate
    assert array["array"] == "0-4%2" and array["dependency"] == "afterok:12" and array["kill-on-invalid-dep"] == "yes"
    assert "source .venv/bin/activate" in (out / "jobs" / "13_submission.sh").read_text()
    # nothing ran yet: the report refuses, naming every unfinished model in one line
    assert main(["study", str(spec), "--out", str(out), "--stage", "report"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "6 model(s) of the study are not finished" in line and all(s in line for s in SLOTS)
    # while those jobs are queued or running (sacct says RUNNING), a second submission is refused
    mock = mocked_slurm()
    with mock.context():
        mock.set_job_state("12", "RUNNING")
        assert main(["study", str(spec), "--out", str(out), "--executor", "slurm", "--no-wait"]) == 2
    assert "still queued or running (12" in capsys.readouterr().err


def test_dry_run_shows_the_jobs_without_submitit_or_a_cluster(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # not installed: the dry run does not need it
    assert main(["study", str(DIGITS), "--out", str(tmp_path / "s"), "--executor", "slurm", "--dry-run", "--partition", "gpu",
                 "--gpus-per-job", "1", "--time-min", "60", "--jobs", "3"]) == 0
    out = capsys.readouterr().out
    assert "jobs (slurm): one per model (train, then attack and probe it), each 60 min, 1 GPU(s), partition gpu" in out
    assert "job 1: surrogate-s100" in out
    assert "jobs 2–6: erm-s0, erm-s1, mixup-s0, mixup-s1, cutmix-s0: a job array of 5, at most 3 at once (--array=0-4%3) after" in out
    assert out.rstrip().endswith("(dry run: nothing trained, attacked or written)") and not (tmp_path / "s").exists()


@pytest.mark.parametrize("kind", ["slurm", "local"])
def test_missing_submitit_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as where the cluster extra is not installed
    assert main(["study", str(DIGITS), "--out", str(tmp_path / "s"), "--executor", kind]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "submitit, which is not installed: pip install 'robustmix[cluster]'" in err
    assert not (tmp_path / "s" / "models").exists()


@needs_submitit
def test_slurm_without_srun_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)  # this machine has no srun
    assert main(["study", str(DIGITS), "--out", str(tmp_path / "s"), "--executor", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot submit to Slurm" in err and "--executor local" in err


def test_cluster_flags_and_table_are_checked(tmp_path, capsys):
    text = DIGITS.read_text()
    spec = parse_study(text + '\n[cluster]\npartition = "gpu"\ngpus = 1\nmax_parallel = 8\nsbatch = { qos = "high" }\n')
    assert (spec.cluster.partition, spec.cluster.gpus, spec.cluster.max_parallel, spec.cluster.sbatch) == ("gpu", 1, 8, (("qos", "high"),))
    assert spec.canonical() == load_study(DIGITS).canonical()  # where a study runs is not what it computes
    for bad, says in (("partitoin = \"gpu\"", r"\[cluster\]: unknown key\(s\) partitoin"), ("gpus = -1", "gpus must be an integer >= 0"),
                      ("sbatch = { time = \"1:00:00\" }", "sbatch sets time, which robustmix sets itself"),
                      ("setup = \"module load cuda\"", "setup must be a list of shell lines")):
        with pytest.raises(RobustmixError, match=says):
            parse_study(text + f"\n[cluster]\n{bad}\n")
    with pytest.raises(RobustmixError, match=r"\[cluster\] is a section of robustmix study, which the gate does not measure"):
        parse_spec(text.split("\n[strong]")[0] + '\n[cluster]\npartition = "gpu"\n')
    for argv, says in ((["--partition", "gpu"], "--partition is an option of the jobs of --executor local|slurm"),
                       (["--executor", "local", "--no-wait"], "--no-wait is for --executor slurm"),
                       (["--executor", "local", "--stage", "train"], "not --stage train"),
                       (["--executor", "slurm", "--sbatch", "array=0-9"], "--sbatch array=... is set by robustmix itself"),
                       (["--executor", "slurm", "--device", "cuda"], "asks each job for no GPU: add --gpus-per-job 1")):
        assert main(["study", str(DIGITS), "--out", str(tmp_path / "s"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and "\n" not in err, err
    with pytest.raises(SystemExit) as stop:  # argparse's one line
        main(["study", str(DIGITS), "--out", str(tmp_path / "s"), "--executor", "slurm", "--mem-gb", "0"])
    assert stop.value.code == 2 and "--mem-gb: '0' must be > 0" in capsys.readouterr().err


def test_the_job_a_record_names(monkeypatch):
    from robustmix.runtime.devices import host_and_job

    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    assert host_and_job()["job_id"] is None and host_and_job()["hostname"]
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4242")
    assert host_and_job()["job_id"] == "submitit-local:4242"
    monkeypatch.setenv("SLURM_JOB_ID", "1235")
    assert host_and_job()["job_id"] == "slurm:1235"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "1234")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert host_and_job()["job_id"] == "slurm:1234_1"  # the array and its task, as squeue shows it
