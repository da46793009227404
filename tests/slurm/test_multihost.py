"""Multi-host MPI without a cluster: two "hosts" made as network namespaces
joined by a veth pair, Open MPI launching ranks in both over TCP (a launch
agent that enters the namespace), the learner on one host and the rollout
rank on the other, the tiny preset run through jobs/train.sh with the mpirun
launcher. Then the link is cut mid-run: the job must fail with a clear
message within a bounded time, and a rerun resumes from the last checkpoint
with every step recorded exactly once."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_helpers import (JOBS, KPO, SOURCE_ROOT, TINY_SETS, assert_every_step_once,  # noqa: E402
                           make_tiny_model, rank_log_has, run, wait_for)

AGENT = SOURCE_ROOT / "tests" / "slurm" / "netns-agent.sh"
SUBNET = "10.211.7"  # private, and only ever inside the namespaces made here
TAG = f"kpo{os.getpid() % 100000}"
HOSTS = {"a": (f"{TAG}a", f"{SUBNET}.1", f"{TAG}va"), "b": (f"{TAG}b", f"{SUBNET}.2", f"{TAG}vb")}
FAIL_WITHIN = 60  # seconds from the cut to the job's exit


def ip(*args, check=True):
    return run(["ip", *args], timeout=30, check=check)


def namespace_pids(namespace):
    out = ip("netns", "pids", namespace, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit()]


def rank_of(pid):
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not cmdline or not cmdline[0].endswith(b"kpo"):
        return None
    for item in environ:
        if item.startswith(b"OMPI_COMM_WORLD_RANK="):
            return int(item.split(b"=", 1)[1])
    return None


def why_no_namespaces():
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to create network namespaces"
    for tool in ("ip", "mpirun"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path(KPO).exists():
        return f"no kpo binary at {KPO}"
    probe = f"{TAG}probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


# A TCP listener and a one-shot connect, run inside the namespaces.
LISTEN = ("import socket, sys\n"
          "server = socket.create_server((sys.argv[1], 0))\n"
          "print(server.getsockname()[1], flush=True)\n"
          "while True:\n"
          "    server.accept()[0].close()\n")
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()"


def wait_until_reachable(ns_from, ns_to, addr_to, timeout=30):
    """Wait until a TCP connection from one host to the other succeeds.

    A link that is up again is not yet a usable network: the address
    resolution the cut left failed or pending makes connect() fail at once
    with EHOSTUNREACH for a while. Open MPI's remote daemon gives up on the
    first such failure, and as it has already daemonized, mpirun never hears
    of it and waits forever for it to report in. A real host that comes back
    is usable before anyone relaunches on it; this makes the test's host so."""
    listener = subprocess.Popen(["ip", "netns", "exec", ns_to, sys.executable, "-c", LISTEN, addr_to],
                                stdout=subprocess.PIPE, text=True)
    try:
        port = listener.stdout.readline().strip()
        assert port.isdigit(), f"no listener in {ns_to}"
        probe = ["ip", "netns", "exec", ns_from, sys.executable, "-c", CONNECT, addr_to, port]
        wait_for(lambda: subprocess.run(probe, capture_output=True, timeout=10).returncode == 0, timeout,
                 interval=0.2, what=f"{ns_from} to reach {addr_to}")
    finally:
        listener.kill()
        listener.wait(timeout=30)


@pytest.fixture
def two_hosts():
    reason = why_no_namespaces()
    if reason:
        pytest.skip(reason)
    (ns_a, addr_a, dev_a), (ns_b, addr_b, dev_b) = HOSTS["a"], HOSTS["b"]
    try:
        ip("netns", "add", ns_a)
        ip("netns", "add", ns_b)
        # Both ends go into the namespaces at once: the host's own network is never touched.
        ip("link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        for ns, addr, dev in ((ns_a, addr_a, dev_a), (ns_b, addr_b, dev_b)):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")
        wait_until_reachable(ns_b, ns_a, addr_a)
        wait_until_reachable(ns_a, ns_b, addr_b)
        yield HOSTS
    finally:
        for ns, _, _ in HOSTS.values():
            for pid in namespace_pids(ns):  # only processes inside our own namespaces
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        for ns, _, _ in HOSTS.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
        assert TAG not in left, f"namespaces left behind: {left}"


def launch_env(tmp_path, hosts):
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("".join(f"{addr} slots=1\n" for _, addr, _ in hosts.values()))
    mca = [
        "--hostfile", str(hostfile), "--map-by", "node",
        "--mca", "plm_rsh_agent", str(AGENT), "--mca", "plm_rsh_no_tree_spawn", "1",
        "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", f"{SUBNET}.0/24",
        "--mca", "oob_tcp_if_include", f"{SUBNET}.0/24",
        # A lost host is noticed in seconds, not the default 8 minutes.
        "--mca", "oob_tcp_keepalive_time", "2", "--mca", "oob_tcp_keepalive_intvl", "1",
        "--mca", "oob_tcp_keepalive_probes", "3",
        "-x", "OMP_NUM_THREADS",
    ]
    env = dict(os.environ, KPO_BIN=KPO, KPO_LAUNCHER="mpirun", KPO_NP="2",
               KPO_LAUNCHER_ARGS=" ".join(mca),
               KPO_NETNS_MAP=" ".join(f"{addr}={ns}" for ns, addr, _ in hosts.values()),
               OMP_NUM_THREADS="1")
    env.pop("SLURM_JOB_ID", None)
    return env


def train_command(model, runs, steps):
    ns_a = HOSTS["a"][0]
    cmd = ["timeout", "300", "ip", "netns", "exec", ns_a, "bash", str(JOBS / "train.sh"), "kpo-weak",
           "--scale", "tiny", "--model", str(model), "--runs", str(runs), "--rollout-ranks", "1",
           "--set", f"run.steps={steps}", "--set", "run.checkpoint_every=2"]
    for item in TINY_SETS:
        cmd += ["--set", item]
    return cmd


def test_two_hosts_link_cut_fails_fast_then_resumes(two_hosts, tmp_path):
    model = make_tiny_model(tmp_path)
    runs = tmp_path / "runs"
    # Enough steps that the cut lands mid-run on a fast machine too (a tiny
    # step can take 0.1 s); the log is polled often.
    steps = 40
    env = launch_env(tmp_path, two_hosts)
    log = tmp_path / "first.log"
    ns_a, ns_b = two_hosts["a"][0], two_hosts["b"][0]
    with open(log, "w") as out:
        job = subprocess.Popen(train_command(model, runs, steps), stdout=out, stderr=subprocess.STDOUT,
                               env=env)
    try:
        wait_for(lambda: rank_log_has(log, rf"^step +1/{steps}"), 180, interval=0.05, what="step 1")
        # Roles on hosts: the learner (rank 0) in host a, the rollout rank (1) in host b.
        ranks_a = {rank_of(p) for p in namespace_pids(ns_a)} - {None}
        ranks_b = {rank_of(p) for p in namespace_pids(ns_b)} - {None}
        assert ranks_a == {0} and ranks_b == {1}, (ranks_a, ranks_b)
        wait_for(lambda: rank_log_has(log, rf"^step +3/{steps}"), 180, interval=0.05, what="step 3")
        assert job.poll() is None, log.read_text()
        ip("-n", ns_a, "link", "set", two_hosts["a"][2], "down")
        cut = time.monotonic()
        status = job.wait(timeout=FAIL_WITHIN)
        failed_after = time.monotonic() - cut
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(timeout=30)
    text = log.read_text()
    assert status != 0, text
    assert "lost communication with a remote daemon" in text, text
    assert "kpo train failed" in text, text
    assert not re.search(rf"^finished at step {steps}", text, re.M), "the run must not have finished"
    last_before = max(int(n) for n in re.findall(rf"^step +(\d+)/{steps}", text, re.M))
    # Nothing of the failed job keeps running in either host.
    wait_for(lambda: not [p for ns in (ns_a, ns_b) for p in namespace_pids(ns) if rank_of(p) is not None],
             30, what="the failed job's ranks to exit")
    print(f"link cut: the job failed after {failed_after:.1f}s")

    # The link comes back; the same command resumes from the newest checkpoint.
    ip("-n", ns_a, "link", "set", two_hosts["a"][2], "up")
    for ns in (ns_a, ns_b):
        ip("-n", ns, "neigh", "flush", "all")
    wait_until_reachable(ns_b, ns_a, two_hosts["a"][1])
    wait_until_reachable(ns_a, ns_b, two_hosts["b"][1])
    resumed = run(train_command(model, runs, steps), env=env, timeout=320)
    assert "resuming" in resumed.stdout and "--resume" in resumed.stdout, resumed.stdout
    assert f"finished at step {steps}" in resumed.stdout, resumed.stdout + resumed.stderr
    first_resumed = int(re.search(rf"^step +(\d+)/{steps}", resumed.stdout, re.M).group(1))
    # Right after the newest checkpoint (every 2 steps) at or before the last recorded step.
    assert first_resumed % 2 == 1 and last_before - 1 <= first_resumed <= last_before + 1, \
        (first_resumed, last_before)
    assert_every_step_once(runs / "kpo-weak" / "run.h5", steps)
