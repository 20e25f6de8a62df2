"""Real storage servers on 127.0.0.1 for the remote-storage tests, each started in its own
folder on free ports and stopped by the PIDs this code started, even when a test fails.

- `ceph_rgw`: Ceph's RADOS Gateway (S3) on a throwaway cluster of one monitor and one
  in-memory OSD, from Debian's ceph-mon, ceph-osd, radosgw and ceph-common.
- `sshd`: OpenSSH's sshd with its own config and keys made here, from Debian's openssh-server.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from mnist_dvc.serving.background import free_port
from tests.helpers import missing_prerequisite

CEPH_TOOLS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
SSH_TOOLS = ("/usr/sbin/sshd", "ssh-keygen")
# How a server's start fails: not ready in time, or one of its commands failing or hanging.
START_ERRORS = (TimeoutError, subprocess.CalledProcessError, subprocess.TimeoutExpired)


def require(tools: tuple[str, ...], packages: str) -> None:
    """Skip when a server's programs are missing, except under CI, where that is a failure."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        missing_prerequisite(f"needs {', '.join(missing)}: apt-get install {packages}")


def wait_until(check, what: str, limit_s: float = 60.0) -> None:
    """Poll `check` until it is true; a command it runs that fails or hangs counts as not yet."""
    deadline, last = time.monotonic() + limit_s, None
    while True:
        try:
            if check():
                return
        except subprocess.CalledProcessError as error:
            last = f": {error}, stderr {(error.stderr or '').strip()[-500:]!r}"
        except subprocess.TimeoutExpired as error:
            last = f": {error}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {limit_s:g} s{last or ''}")
        time.sleep(0.2)


@contextmanager
def _daemons() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.terminate()
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    conf: Path
    processes: list[subprocess.Popen]

    def make_bucket(self, name: str) -> None:
        import s3fs

        s3 = s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            client_kwargs={"endpoint_url": self.endpoint},
        )
        s3.mkdir(name)


@contextmanager
def ceph_rgw(folder: Path) -> Iterator[S3Server]:
    """A throwaway Ceph with its S3 gateway.

    Ceph sometimes failed to start on a busy machine ("wrong fsid" in osd.0.log, or an OSD
    not up after 60 s while pytest-xdist's other process trained or started Ray). So clusters
    start one at a time across the test processes (the ports are chosen and bound under one
    lock), the OSD gets 180 s, and a failed start gets one more, fresh try whose error ends
    with the OSD's and the monitor's last log lines."""
    with ExitStack() as stack:
        with FileLock(Path(tempfile.gettempdir()) / "mnist-dvc-ceph-start.lock"):
            try:
                server = stack.enter_context(_ceph_rgw_once(folder / "try-1"))
            except START_ERRORS:
                try:
                    server = stack.enter_context(_ceph_rgw_once(folder / "try-2"))
                except START_ERRORS as error:
                    raise RuntimeError(f"{error}\n{_log_tails(folder / 'try-2')}") from error
        yield server


def _log_tails(folder: Path, lines: int = 15) -> str:
    tails = []
    for name in ("osd.0.log", "mon.a.log", "client.rgw.a.log", "osd.out", "mon.out", "rgw.out"):
        log = folder / "log" / name
        if log.exists():
            text = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log}\n" + "\n".join(text))
    return "\n".join(tails)


@contextmanager
def _ceph_rgw_once(folder: Path) -> Iterator[S3Server]:
    require(CEPH_TOOLS, "ceph-mon ceph-osd radosgw ceph-common")
    for sub in ("run", "log", "mon", "osd/0", "rgw"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    mon_port, rgw_port, fsid = free_port(), free_port(), str(uuid.uuid4())
    conf = folder / "ceph.conf"
    (folder / "keyring").touch()
    conf.write_text(
        f"""[global]
fsid = {fsid}
mon_host = v1:127.0.0.1:{mon_port}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr2 = false
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_objectstore = memstore
memstore_device_bytes = 1073741824
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_max_pg_per_osd = 1000
run_dir = {folder}/run
admin_socket = {folder}/run/$name.asok
log_file = {folder}/log/$name.log
mon_data = {folder}/mon/$id
osd_data = {folder}/osd/$id
keyring = {folder}/keyring
rgw_data = {folder}/rgw
rgw_frontends = beast endpoint=127.0.0.1:{rgw_port}
"""
    )
    c = ["-c", str(conf)]

    def run(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout

    def daemon(*args: str, log: str) -> subprocess.Popen:
        out = open(folder / "log" / log, "w")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    with _daemons() as started:
        monmap = folder / "monmap"
        run("monmaptool", "--create", "--addv", "a", f"[v1:127.0.0.1:{mon_port}]",
            "--fsid", fsid, str(monmap))  # fmt: skip
        run("ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", str(monmap))
        started.append(daemon("ceph-mon", *c, "-i", "a", "-f", log="mon.out"))
        osd_id = run("ceph", *c, "osd", "create").strip()
        run("ceph-osd", *c, "-i", osd_id, "--mkfs")
        started.append(daemon("ceph-osd", *c, "-i", osd_id, "-f", log="osd.out"))
        wait_until(lambda: " 1 up" in run("ceph", *c, "osd", "stat"), "Ceph OSD", limit_s=180)
        started.append(daemon("radosgw", *c, "-n", "client.rgw.a", "-f", log="rgw.out"))
        endpoint = f"http://127.0.0.1:{rgw_port}"
        wait_until(lambda: answers(rgw_port), "RADOS Gateway", limit_s=120)
        user = json.loads(
            run("radosgw-admin", *c, "user", "create", "--uid=dvc", "--display-name=dvc")
        )
        keys = user["keys"][0]
        yield S3Server(endpoint, keys["access_key"], keys["secret_key"], conf, started)


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class SSHServer:
    url_prefix: str  # ssh://root@127.0.0.1:PORT
    keyfile: Path
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


@contextmanager
def sshd(folder: Path) -> Iterator[SSHServer]:
    require(SSH_TOOLS, "openssh-server")
    folder.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)],
                       check=True, timeout=30)  # fmt: skip
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {folder}/host_key
AuthorizedKeysFile {folder}/authorized_keys
PidFile {folder}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
"""
    )
    with _daemons() as started:
        log = open(folder / "sshd.log", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        started.append(proc)
        wait_until(lambda: answers(port), "sshd", limit_s=30)
        yield SSHServer(f"ssh://root@127.0.0.1:{port}", folder / "client_key", proc)
