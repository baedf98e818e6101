"""Copies of the suite running at once on one machine (a shared CI runner) get DDS domains of
their own: each holds a slot (ros_fixtures.domain) while it runs."""

import os
import subprocess
import sys
from pathlib import Path

from ros_fixtures import domain

TEST_DIR = Path(__file__).resolve().parents[1]
CLAIM = "import sys, ros_fixtures; print(ros_fixtures.domain(61), flush=True); sys.stdin.read()"  # held till EOF


def test_a_suite_running_beside_this_one_gets_other_domains():
    ours = domain(61)                     # this suite's slot (claimed at collection, or now)
    env = {k: v for k, v in os.environ.items() if k != "OTPR_TEST_DOMAIN_OFFSET"}
    env["PYTHONPATH"] = os.pathsep.join([str(TEST_DIR), env.get("PYTHONPATH", "")])
    beside = subprocess.Popen([sys.executable, "-c", CLAIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        theirs = beside.stdout.readline()
    finally:
        _, error = beside.communicate("", timeout=30)
    assert theirs.strip() and int(theirs) != ours and 0 <= int(theirs) <= 101, (ours, theirs, error)
