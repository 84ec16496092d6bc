"""cluster.yaml and `ray submit` (issue 4, item 7).

Fast: cluster.yaml validates against the schema inside the installed ray and passes autoal's lint;
mutated copies fail with a message that names the problem; the CLI reports both.

Slow (end-to-end, run in CI): a local-provider cluster on this machine. A private sshd (own host
key, a fresh authorized key, a free port on 127.0.0.1, HOME set to a temporary folder, and its own
PID namespace, so that `ray down`'s `ray stop` cannot touch any other Ray instance, such as the
test session's) is the head node; `ray up` mounts and installs the repository there, `ray submit`
runs pipelines/sweep.py copied alone to the head's home folder, `ray down` stops it, and no
process the test started is left behind. Needs root (or CAP_SYS_ADMIN) and openssh-server, rsync
and netcat (scripts/ci_system_deps.sh); skipped without them, except under CI=true, where it fails.
"""

from __future__ import annotations

import copy
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from autoal.errors import ConfigError
from autoal.platform.cluster import (
    check_cluster,
    cluster_problems,
    load_cluster_file,
    schema_problems,
    sweep_trial_resources,
)

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
TEMPLATE = Path(__file__).resolve().parents[1] / "cluster_local.yaml.in"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
GPU_TRIAL = {"CPU": 2, "GPU": 1}


# ----------------------------------------------------------------------------------- fast: lint


def test_cluster_yaml_validates_and_passes_lint():
    config = load_cluster_file(CLUSTER_YAML)
    assert schema_problems(config) == []
    summary = check_cluster(CLUSTER_YAML, trial_resources=GPU_TRIAL)
    assert summary.head_node_type == "head"
    assert summary.repo_mount == "~/autoal-src"
    assert summary.fitting_node_types == ["gpu_worker"]
    assert summary.node_types["gpu_worker"] == {"CPU": 4.0, "GPU": 1.0}


def _sweep_names() -> list[str]:
    return sorted(p.stem for p in (REPO / "autoal" / "conf" / "sweep").glob("*.yaml") if p.stem != "base")


def test_cluster_yaml_fits_every_sweep_config():
    """Every ready sweep's trial, as pipelines/sweep.py plans it (the trial, its Ray scorer
    actors, its Ray Train workers), fits cluster.yaml's GPU workers; also with scoring=ray."""
    from autoal.cli.common import compose

    if not _sweep_names():
        pytest.skip("no conf/sweep/*.yaml yet")
    for name in _sweep_names():
        for extra in ([], ["scoring=ray"]):
            summary = check_cluster(CLUSTER_YAML, sweep=compose([f"sweep={name}", *extra], "sweep"))
            assert summary.fitting_node_types == ["gpu_worker"], (name, extra)


def test_sweep_resources_per_trial_that_fit_no_node():
    from autoal.cli.common import compose

    if "smoke" not in _sweep_names():
        pytest.skip("no conf/sweep/smoke.yaml yet")
    cfg = compose(["sweep=smoke", "sweep.resources_per_trial={CPU: 8}"], "sweep")
    with pytest.raises(ConfigError, match=r"a trial needs \{CPU: 8\} on one node, which fits no node type"):
        check_cluster(CLUSTER_YAML, sweep=cfg)
    assert sweep_trial_resources("smoke") == {"CPU": 1}  # a sweep file's raw resources_per_trial


def _drop_commands(cmds, pattern):
    return [c for c in cmds if not re.search(pattern, c)]


def _m_no_head_type(c):
    del c["head_node_type"]


def _m_unknown_head_type(c):
    c["head_node_type"] = "cpu_head"


def _m_repo_part_missing(c):
    del c["file_mounts"]["~/autoal-src/README.md"]


def _m_whole_repo(c):
    c["file_mounts"] = {"~/autoal-src": "."}


def _m_repo_not_mounted(c):
    c["file_mounts"] = {}


def _m_other_folder_mounted(c):
    c["file_mounts"] = {"~/autoal-src": "./autoal/conf"}


def _m_mounted_under_package_name(c):
    c["file_mounts"] = {k.replace("~/autoal-src", "~/autoal"): v for k, v in c["file_mounts"].items()}
    c["setup_commands"] = [x.replace("~/autoal-src", "~/autoal") for x in c["setup_commands"]]


def _m_no_install(c):
    c["setup_commands"] = _drop_commands(c["setup_commands"], r"pip install")


def _m_worker_type_no_install(c):
    c["available_node_types"]["gpu_worker"]["worker_setup_commands"] = ["echo overridden"]
    c["setup_commands"] = _drop_commands(c["setup_commands"], r"pip install")
    c["head_setup_commands"] = c["head_setup_commands"] + ["pip install -e ~/autoal-src"]


def _m_no_env(c):
    c["setup_commands"] = [s.replace("RAY_AUTH_MODE=disabled ", "") for s in c["setup_commands"]]


def _m_no_mlflow(c):
    c["head_start_ray_commands"] = _drop_commands(c["head_start_ray_commands"], r"mlflow server")


def _m_mlflow_loopback(c):
    c["head_start_ray_commands"] = [
        s.replace("--host 0.0.0.0", "--host 127.0.0.1") for s in c["head_start_ray_commands"]
    ]


def _m_no_idle_timeout(c):
    del c["idle_timeout_minutes"]


def _m_small_gpu_node(c):
    c["available_node_types"]["gpu_worker"]["resources"] = {"CPU": 1, "GPU": 1}


def _m_schema(c):
    c["available_node_types"]["gpu_worker"]["resources"] = {"CPU": 4, "GPU": 0.5}
    c["worker_nodes"] = {}


def _m_uploads_venv(c):
    c["file_mounts"] = {"~/autoal-src": "."}
    c["rsync_filter"] = []


MUTATIONS = [
    (_m_no_head_type, "head_node_type: missing"),
    (_m_unknown_head_type, "head_node_type: 'cpu_head' is not a node type"),
    (_m_repo_not_mounted, "the autoal repository is not mounted"),
    (_m_other_folder_mounted, "the autoal repository is not mounted"),
    (_m_repo_part_missing, "the repository mounted at ~/autoal-src lacks README.md"),
    (_m_mounted_under_package_name, "~/autoal: the repository sits in the home folder under the package's name"),
    (_m_no_install, "installs the mounted repository on the head node"),
    (_m_worker_type_no_install, "worker node type 'gpu_worker' never installs the mounted repository"),
    (_m_no_env, "RAY_AUTH_MODE is not set on the head node"),
    (_m_no_mlflow, "no `mlflow server` is started on the head"),
    (_m_mlflow_loopback, "listens on loopback only"),
    (_m_no_idle_timeout, "idle_timeout_minutes: not set"),
    (_m_small_gpu_node, "a trial needs {CPU: 2, GPU: 1} on one node, which fits no node type"),
    (_m_schema, "schema: available_node_types.gpu_worker.resources.GPU: 0.5 is not of type 'integer'"),
    (_m_uploads_venv, "would upload .venv"),
]


@pytest.mark.parametrize("mutate, expected", MUTATIONS, ids=[m.__name__[3:] for m, _ in MUTATIONS])
def test_mutated_cluster_file_fails_naming_the_problem(tmp_path, mutate, expected):
    config = copy.deepcopy(load_cluster_file(CLUSTER_YAML))
    mutate(config)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        check_cluster(path, trial_resources=GPU_TRIAL, base_dir=REPO)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_whole_repository_mount_passes_with_gitignore_filter(tmp_path):
    config = load_cluster_file(CLUSTER_YAML)
    _m_whole_repo(config)
    assert cluster_problems(config, base_dir=REPO, trial_resources=GPU_TRIAL) == []


def test_trial_that_fits_no_node_type():
    config = load_cluster_file(CLUSTER_YAML)
    problems = cluster_problems(config, base_dir=REPO, trial_resources={"cpu": 8})
    assert problems == [
        "resources: a trial needs {CPU: 8} on one node, which fits no node type "
        "(head: {CPU: 0}; gpu_worker: {CPU: 4, GPU: 1}); lower the sweep's "
        "resources_per_trial or add a larger node type"
    ]
    # a placement group (PACK) may spread its bundles over nodes: each must fit some node type
    assert cluster_problems(config, base_dir=REPO, trial_resources=[{"CPU": 1}, {"CPU": 1, "GPU": 0.5}]) == []
    assert cluster_problems(config, base_dir=REPO, trial_resources={"bundles": [{"CPU": 3}, {"CPU": 2}]}) == []
    (p,) = cluster_problems(config, base_dir=REPO, trial_resources={"bundles": [{"CPU": 1}, {"GPU": 2}]})
    assert "bundle (PACK placement group) needs {GPU: 2} on one node" in p
    # STRICT_PACK: all bundles on one node
    (p,) = cluster_problems(
        config, base_dir=REPO, trial_resources={"bundles": [{"CPU": 3}, {"CPU": 2}], "strategy": "STRICT_PACK"}
    )
    assert "a trial needs {CPU: 5} on one node" in p
    # more than the whole cluster at full scale (4 GPU workers)
    (p,) = cluster_problems(config, base_dir=REPO, trial_resources=[{"GPU": 1}] * 5)
    assert "a trial needs {GPU: 5} in all, more than the whole cluster has at full scale ({CPU: 16, GPU: 4})" in p
    with pytest.raises(ConfigError, match="CPU: expected a number"):
        check_cluster(CLUSTER_YAML, trial_resources={"CPU": "two"})


def test_every_problem_is_reported_at_once(tmp_path):
    config = load_cluster_file(CLUSTER_YAML)
    _m_no_head_type(config)
    _m_repo_not_mounted(config)
    _m_no_mlflow(config)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="3 problems") as info:
        check_cluster(path, base_dir=REPO)
    for expected in ("head_node_type", "not mounted", "mlflow server"):
        assert expected in str(info.value)


def test_cli_reports_ok_and_problems(tmp_path):
    script = REPO / "pipelines" / "cluster_check.py"
    ok = subprocess.run(
        [sys.executable, str(script), str(CLUSTER_YAML), "--resources", "CPU=4,GPU=1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and "fit: gpu_worker" in ok.stdout
    config = load_cluster_file(CLUSTER_YAML)
    _m_no_install(config)
    bad_path = tmp_path / "bad.yaml"
    bad_path.write_text(yaml.safe_dump(config))
    bad = subprocess.run(
        [sys.executable, str(script), str(bad_path), "--base-dir", str(REPO), "--resources", "CPU=8"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "installs the mounted repository" in bad.stderr and "fits no node type" in bad.stderr


def test_local_template_renders_to_a_valid_local_cluster(tmp_path):
    text = _render(
        tmp_path,
        ssh_port=2222,
        ray_port=6380,
        client_port=10011,
        agent_port=52366,
        key=tmp_path / "id",
        home=tmp_path,
        raytmp=tmp_path,
    )
    config = yaml.safe_load(text)
    assert "{{" not in text
    assert schema_problems(config) == []
    # The local file differs from cluster.yaml only where a test must: no MLflow server (the sweep
    # writes a SQLite file in the test's tmp folder) and no idle workers to time out.
    problems = cluster_problems(config, base_dir=REPO)
    assert [p for p in problems if not p.startswith("mlflow:")] == []


# ------------------------------------------------------------- slow: the head's MLflow command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_head_mlflow_command_starts_a_server(tmp_path):
    """The `mlflow server` line of cluster.yaml's head_start_ray_commands, run as Ray would run it
    (bash, HOME = the head's home), serves /health and writes its pid file; the pid stops it."""
    import urllib.request

    config = load_cluster_file(CLUSTER_YAML)
    (cmd,) = [c for c in config["head_start_ray_commands"] if "mlflow server" in c]
    port = _free_port()
    cmd = cmd.replace("--port 5000", f"--port {port}").replace("--host 0.0.0.0", "--host 127.0.0.1")
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    pid_file = tmp_path / "mlflow" / "server.pid"
    try:
        subprocess.run(["bash", "-c", cmd], env=env, check=True, timeout=60)
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                break
            except OSError:
                if time.time() > deadline:
                    log = tmp_path / "mlflow" / "server.log"
                    pytest.fail(f"mlflow server did not answer: {log.read_text()[-3000:] if log.exists() else ''}")
                time.sleep(0.5)
        assert (tmp_path / "mlflow" / "mlflow.db").exists()
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            _terminate([pid] + _descendants(pid))


# ---------------------------------------------------------------------- slow: end to end helpers

RAY_PROCESS = re.compile(
    r"ray::|raylet|gcs_server|default_worker\.py|log_monitor\.py|monitor\.py|"
    r"ray_client_server|dashboard/agent\.py|runtime_env/agent|ray/dashboard"
)


def _need(ok: bool, reason: str) -> None:
    """Skip locally, fail in CI, when the machine cannot run the end-to-end test."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run; scripts/ci_system_deps.sh installs its system packages)")
    pytest.skip(reason)


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _proc_environ_has(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for pid in _pids():
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(pid)
    return out


def _descendants(pid: int) -> list[int]:
    kids, todo, out = _children_map(), [pid], []
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _terminate(pids: list[int], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() and _proc_cmdline(p) for p in pids):
            time.sleep(0.2)


def _marked(marker: bytes) -> dict[int, str]:
    """Processes (other than this one) whose environment holds ``marker``: everything the head's
    login shells started (they export the cluster's own RAY_TMPDIR), Ray workers included."""
    me = os.getpid()
    return {pid: _proc_cmdline(pid) for pid in _pids() if pid != me and _proc_environ_has(pid, marker)}


def _pidns_available() -> bool:
    if not shutil.which("unshare"):
        return False
    try:
        return (
            subprocess.run(
                ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true"], capture_output=True, timeout=20
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _render(
    tmp: Path, *, ssh_port, ray_port, client_port, agent_port, key, home, raytmp, name=None, dashboard_port=8265
) -> str:
    fields = {
        "CLUSTER_NAME": name or f"autoal-e2e-{uuid.uuid4().hex[:8]}",
        "SSH_USER": pwd.getpwuid(os.geteuid()).pw_name,
        "SSH_KEY": str(key),
        "SSH_PORT": str(ssh_port),
        "REPO": str(REPO),
        "RAY_TMPDIR": str(raytmp),
        "RAY_PORT": str(ray_port),
        "CLIENT_PORT": str(client_port),
        "AGENT_PORT": str(agent_port),
        "DASHBOARD_PORT": str(dashboard_port),
        "BASE_PYTHON": sys.executable,
        "BASE_SITE": sysconfig.get_paths()["purelib"],
    }
    text = TEMPLATE.read_text()
    for key_, value in fields.items():
        text = text.replace("{{" + key_ + "}}", value)
    return text


class LocalHead:
    """A private sshd on 127.0.0.1:<free port>: own host key, one authorized key, HOME = a temp
    folder, in a PID namespace of its own (the "node": `ray stop` there sees only its processes),
    killed as a whole by :meth:`stop`."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.home = tmp / "home"
        self.key = tmp / "id_ed25519"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "sshd.log"

    def start(self) -> None:
        self.home.mkdir(parents=True)
        (self.home / ".bashrc").write_text("# the head node's ~/.bashrc (setup_commands append to it)\n")
        host_key = self.tmp / "ssh_host_ed25519_key"
        for path in (host_key, self.key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "autoal-e2e", "-f", str(path)],
                check=True,
                timeout=30,
            )
        authorized = self.tmp / "authorized_keys"
        authorized.write_text(Path(f"{self.key}.pub").read_text())
        authorized.chmod(0o600)
        config = self.tmp / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {self.tmp / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "PrintMotd no",
                    "MaxSessions 100",
                    "MaxStartups 100:30:200",
                    f"SetEnv HOME={self.home}",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
        # --kill-child: when unshare dies, so does sshd, the namespace's init, and with it every
        # process in the namespace.
        cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", _sshd(), "-D", "-e", "-f", str(config)]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.time() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"sshd did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        probe = subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                f"ProxyCommand=nc 127.0.0.1 {self.port}",
                f"{pwd.getpwuid(os.geteuid()).pw_name}@127.0.0.1",
                "echo $HOME",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert probe.returncode == 0 and probe.stdout.strip() == str(self.home), (
            f"key login to 127.0.0.1 failed: {probe.stderr[-2000:]}\nsshd: {self.log.read_text()[-2000:]}"
        )

    def namespace_processes(self) -> dict[int, str]:
        """Live processes in the head's PID namespace (as pids of this one), zombies aside."""
        if self.proc is None or not (kids := _descendants(self.proc.pid)):
            return {}
        try:
            ns = os.readlink(f"/proc/{kids[0]}/ns/pid")
        except OSError:
            return {}
        out = {}
        for pid in _pids():
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != ns:
                    continue
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                out[pid] = _proc_cmdline(pid)
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = [self.proc.pid] + _descendants(self.proc.pid)
        _terminate(pids)  # unshare --kill-child: the namespace's init, then everything in it, dies
        self.proc.wait(timeout=10)
        self.proc = None


def _sshd() -> str:
    return shutil.which("sshd") or "/usr/sbin/sshd"


def _ray(args: list[str], env: dict, timeout: float, log_dir: Path) -> subprocess.CompletedProcess:
    """Run the ray CLI. Output goes to files, not pipes: the ssh ControlMaster it leaves behind
    (ControlPersist) would hold a pipe open, and a captured run would wait for it to exit."""
    ray = Path(sys.executable).parent / "ray"
    stem = log_dir / f"ray-{args[0]}-{time.monotonic_ns()}"
    with open(f"{stem}.out", "w") as out, open(f"{stem}.err", "w") as err:
        proc = subprocess.run(
            [str(ray), *args], env=env, stdout=out, stderr=err, timeout=timeout, stdin=subprocess.DEVNULL
        )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        Path(f"{stem}.out").read_text(errors="replace"),
        Path(f"{stem}.err").read_text(errors="replace"),
    )


def _tail(p: subprocess.CompletedProcess, n: int = 6000) -> str:
    return f"exit {p.returncode}\n--- stdout\n{p.stdout[-n:]}\n--- stderr\n{p.stderr[-n:]}"


# ------------------------------------------------------------------------- slow: end to end


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_up_submit_down_on_a_local_cluster(tmp_path):
    for tool in ("ssh", "ssh-keygen", "rsync", "nc"):
        _need(shutil.which(tool) is not None, f"`{tool}` is not installed (apt: openssh-client rsync netcat-openbsd)")
    _need(Path(_sshd()).exists(), "sshd is not installed (apt: openssh-server)")
    _need(
        _pidns_available(),
        "no PID namespace for the test cluster: `unshare --pid --fork --mount-proc` is not "
        "permitted here (it needs root or CAP_SYS_ADMIN); without one, `ray down`'s `ray stop` "
        "would stop every other Ray instance on this machine",
    )

    # A short RAY_TMPDIR (Unix socket paths are limited to ~107 bytes), the cluster's own.
    raytmp = Path(tempfile.mkdtemp(prefix="arc", dir="/tmp"))
    marker = f"RAY_TMPDIR={raytmp}".encode()
    head = LocalHead(tmp_path)
    cluster = tmp_path / "cluster.yaml"
    ray_port, dashboard_port = _free_port(), _free_port()
    cluster.write_text(
        _render(
            tmp_path,
            ssh_port=head.port,
            ray_port=ray_port,
            client_port=_free_port(),
            agent_port=_free_port(),
            key=head.key,
            home=head.home,
            raytmp=raytmp,
            dashboard_port=dashboard_port,
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    # TMPDIR: the launcher's config cache (`ray down` has no --no-config-cache) stays in tmp_path.
    (tmp_path / "client-tmp").mkdir()
    env.update(
        RAY_TMPDIR=str(raytmp),
        TMPDIR=str(tmp_path / "client-tmp"),
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
    )
    results = tmp_path / "results"
    timings: dict[str, float] = {}
    steps: dict[str, subprocess.CompletedProcess] = {}
    up_done = False
    try:
        t0 = time.time()
        head.start()
        timings["sshd"] = time.time() - t0

        t0 = time.time()
        up = _ray(
            ["up", "-y", "--no-config-cache", "--log-style=record", str(cluster)], env, timeout=240, log_dir=tmp_path
        )
        timings["ray up"] = time.time() - t0
        steps["ray up"] = up
        up_done = True
        assert up.returncode == 0, f"ray up failed\n{_tail(up)}"
        src = head.home / "autoal-src"
        assert (src / "autoal" / "conf" / "config.yaml").exists(), "the repository was not mounted at ~/autoal-src"
        assert not (src / ".venv").exists(), "rsync_filter did not keep .venv off the head"

        # The head's Python imports the mounted copy (installed by setup_commands), not the test's repo.
        probe = _ray(
            [
                "exec",
                "--no-config-cache",
                "--log-style=record",
                str(cluster),
                "python -c 'import autoal, autoal.paths; print(\"AUTOAL\", autoal.__file__, autoal.paths.conf_dir())'",
            ],
            env,
            timeout=120,
            log_dir=tmp_path,
        )
        assert probe.returncode == 0, _tail(probe)
        m = re.search(r"AUTOAL (\S+) (\S+)", probe.stdout)
        assert m, _tail(probe)
        assert m.group(1) == str(src / "autoal" / "__init__.py"), m.group(1)
        assert m.group(2) == str(src / "autoal" / "conf"), m.group(2)

        t0 = time.time()
        script, args, expect = _submit_target(tmp_path, results, ray_port)
        sub = _ray(
            ["submit", "--no-config-cache", "--log-style=record", str(cluster), str(script), "--", *args],
            env,
            timeout=300,
            log_dir=tmp_path,
        )
        timings["ray submit"] = time.time() - t0
        assert sub.returncode == 0, f"ray submit failed\n{_tail(sub)}"
        for pattern in expect:
            assert re.search(pattern, sub.stdout), f"{pattern!r} not in the submitted script's output\n{_tail(sub)}"
        assert (head.home / script.name).exists(), "ray submit copies the script to the head's home folder"
        assert (results / "mlflow.db").exists(), "the sweep did not write to the test's MLflow store"

        # The quality matrix's smoke version as a Ray job: `ray job submit --working-dir <repo> -- autoal
        # sweep sweep=quality_smoke ...` runs the head's installed console script through the cluster's job
        # server (README, "On a cluster"): two settings x three strategies, then a leader's extra seed per
        # setting, and the report's matrix section.
        t0 = time.time()
        _, job_args, expect = _submit_target(tmp_path, tmp_path / "job-results", ray_port)
        job_args = [
            "sweep=quality_smoke",
            "sweep.seeds=[0]",
            "sweep.leaders={top: 1, seeds: [1], always: []}",
            *job_args[3:],
        ]
        job = _ray(
            [
                "job",
                "submit",
                "--address",
                f"http://127.0.0.1:{dashboard_port}",
                "--working-dir",
                str(REPO),
                "--",
                "autoal",
                "sweep",
                *job_args,
            ],
            env,
            timeout=600,
            log_dir=tmp_path,
        )
        timings["ray job submit"] = time.time() - t0
        assert job.returncode == 0, f"ray job submit failed\n{_tail(job)}"
        # (the job's driver gets the cluster's address from the job server: the node's own IP)
        attached = rf"attached to the Ray cluster at [\d.]+:{ray_port}\b"
        for pattern in [
            attached,
            r"leaders: 2 arm\(s\) x 1 more seed",
            r"8/8 trials finished",
            r"Job 'raysubmit_\w+' succeeded",
        ]:
            assert re.search(pattern, job.stdout), f"{pattern!r} not in the job's output\n{_tail(job)}"
        assert (tmp_path / "job-results" / "mlflow.db").exists(), "the job's sweep did not write its MLflow store"
        (matrix,) = (tmp_path / "job-results" / "runs" / "reports").glob("*/matrix.md")
        assert "## mnist_lt" in matrix.read_text() and "## digits" in matrix.read_text()
        import mlflow

        client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'job-results' / 'mlflow.db'}")
        trials = client.search_runs(
            [client.get_experiment_by_name("autoal").experiment_id], "tags.autoal_role = 'trial'"
        )
        # the cluster's `ray start` sets RAY_worker_niceness=0: trials at normal priority
        assert len(trials) == 8 and {r.data.tags["process_niceness"] for r in trials} == {"0"}

        # While the cluster runs, its Ray processes live in the head's namespace and carry its
        # RAY_TMPDIR; `ray down` must stop them.
        running = head.namespace_processes()
        assert any(RAY_PROCESS.search(cmd) for cmd in running.values()), f"no Ray process on the head: {running}"
        assert any(RAY_PROCESS.search(cmd) for cmd in _marked(marker).values()), (
            "no Ray process of the test cluster found"
        )

        t0 = time.time()
        down = _ray(["down", "-y", "--log-style=record", str(cluster)], env, timeout=120, log_dir=tmp_path)
        timings["ray down"] = time.time() - t0
        steps["ray down"] = down
        up_done = False
        assert down.returncode == 0, f"ray down failed\n{_tail(down)}"
        # Nothing but sshd may be left on the "node": no Ray process, no worker, no stray child.
        deadline = time.time() + 30
        while (
            left := {p: c for p, c in head.namespace_processes().items() if not c.startswith(("sshd", _sshd()))}
        ) and time.time() < deadline:
            time.sleep(0.5)
        assert not left, f"processes left on the head after `ray down`: {left}"
        assert not any(RAY_PROCESS.search(c) for c in _marked(marker).values())
    finally:
        if up_done:  # a failure between `ray up` and `ray down`: still take the cluster down
            try:
                _ray(["down", "-y", "--log-style=record", str(cluster)], env, timeout=120, log_dir=tmp_path)
            except subprocess.TimeoutExpired:
                pass
        head.stop()
        # The ssh control masters `ray` left on this side (ControlPersist) end with their server.
        deadline = time.time() + 15
        while (leftovers := _marked(marker)) and time.time() < deadline:
            time.sleep(0.5)
        _terminate(list(leftovers))
        shutil.rmtree(raytmp, ignore_errors=True)
        print("e2e timings (s):", {k: round(v, 1) for k, v in timings.items()})
        for name, proc in steps.items():
            print(
                f"--- {name}:",
                *[ln.split(" -- ", 1)[-1] for ln in (proc.stdout + proc.stderr).splitlines() if "LogTimer=" in ln],
                sep="\n  ",
            )
    assert not leftovers, f"processes of the test cluster survived it: {leftovers}"


def _submit_target(tmp_path: Path, results: Path, ray_port: int) -> tuple[Path, list[str], list[str]]:
    """What `ray submit` runs: pipelines/sweep.py with the smoke sweep (2 strategies, 1 round; one
    seed and no report, for time), MLflow and Tune results in the test's tmp folder; and what its
    output must show (attached to this cluster, not a local Ray; the summary table)."""
    args = [
        "sweep=smoke",
        "sweep.seeds=[0]",
        "sweep.report=false",
        f"tracking.uri=sqlite:///{results / 'mlflow.db'}",
        f"runtime.output_dir={results / 'runs'}",
        f"sweep.storage_path={results / 'ray_results'}",
    ]
    expect = [
        rf"attached to the Ray cluster at 127\.0\.0\.1:{ray_port}",
        r"AUBC mean ± std",
        r"2/2 trials finished",
        r"MLflow UI: ",
    ]
    return REPO / "pipelines" / "sweep.py", args, expect
