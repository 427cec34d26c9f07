"""Torch jobs take their CPU threads from --threads or the cores they are given."""

import os
import subprocess

import torch

from models.device import set_cpu_threads
from tests.conftest import job_command, job_env


def test_threads_come_from_the_flag_or_the_cores_given():
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert set_cpu_threads(None) == len(os.sched_getaffinity(0)) == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_a_torch_job_pinned_to_one_core_uses_one_thread(tmp_path):
    """taskset gives the job one core: torch must not start a thread per machine core beside Spark."""
    command = ["taskset", "-c", "0", *job_command("train_twin", "--lakehouse", str(tmp_path / "lake"),
                                                  "--artifacts", str(tmp_path / "artifacts"))]
    done = subprocess.run(command, env=job_env(), capture_output=True, text=True, timeout=300)
    assert "torch uses 1 CPU thread(s)" in done.stderr, done.stderr[-2000:]
    assert done.returncode == 2  # and then fails clearly: there is no lakehouse
