#!/usr/bin/env python3
"""Local dev stack without Docker: real Apache Kafka (KRaft) and a MongoDB-wire server.

    python3 devstack/stack.py fetch     # resolve the jars with Maven into .devstack/
    python3 devstack/stack.py up [kafka|mongo]    # start what is not running, wait until it answers
    python3 devstack/stack.py status    # what runs, where it listens, where it logs
    python3 devstack/stack.py down [kafka|mongo]  # stop exactly what `up` started (pid files)
    python3 devstack/stack.py run -- CMD ...   # up, run CMD, then stop only what this call started

Standard library only, so it runs before the project's virtualenv exists.
Everything it writes lives under .devstack/ (git-ignored): lib/, data/, logs/, run/.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STATE = Path(os.environ.get("DEVSTACK_HOME", ROOT / ".devstack")).resolve()
HOST = "127.0.0.1"
KAFKA_PORT = int(os.environ.get("DEVSTACK_KAFKA_PORT", "9092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("DEVSTACK_KAFKA_CONTROLLER_PORT", "9093"))
MONGO_PORT = int(os.environ.get("DEVSTACK_MONGO_PORT", "27017"))
START_TIMEOUT_S = float(os.environ.get("DEVSTACK_START_TIMEOUT", "90"))


class StackError(RuntimeError):
    """A failure the user can act on; printed without a traceback."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    pom: Path

    @property
    def lib(self) -> Path:
        return STATE / self.name / "lib"

    @property
    def data(self) -> Path:
        return STATE / self.name / "data"

    @property
    def log(self) -> Path:
        return STATE / "logs" / f"{self.name}.log"

    @property
    def safepoints(self) -> Path:
        """The JVM's stops (`-Xlog:safepoint`: every collector pause and any other safepoint, with the time
        its threads stood still), read by `make bench`'s alert-latency step (bench/store_pauses.py)."""
        return STATE / "logs" / f"{self.name}-safepoints.log"

    @property
    def pidfile(self) -> Path:
        return STATE / "run" / f"{self.name}.pid"

    def log_stops(self) -> list[str]:
        # quoted: -Xlog's options are separated by ':', which a path may hold
        return [f'-Xlog:safepoint:file="{self.safepoints}":uptime']


KAFKA = Service("kafka", KAFKA_PORT, HERE / "kafka-pom.xml")
MONGO = Service("mongo", MONGO_PORT, HERE / "mongo-pom.xml")
SERVICES = (KAFKA, MONGO)


def say(msg: str) -> None:
    print(f"[devstack] {msg}", flush=True)


# --- prerequisites -----------------------------------------------------------------------


def require_java() -> str:
    java = shutil.which("java")
    if not java:
        raise StackError("Java is missing: install a JDK 17+ (e.g. `apt-get install openjdk-17-jdk-headless`).")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    first = out.splitlines()[0] if out else ""
    try:
        major = int(first.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        major = 0
    if major and major < 17:
        raise StackError(f"Java 17+ is needed, found: {first}")
    return java


def fetch(service: Service) -> None:
    """Resolve the service's jars with Maven into its lib folder (once; cached afterwards)."""
    marker = service.lib / ".complete"
    if marker.exists():
        return
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("Maven (mvn) is missing: it fetches the Kafka and mongo-java-server jars.")
    say(f"fetching {service.name} jars with Maven (one time) ...")
    if service.lib.exists():
        shutil.rmtree(service.lib)
    service.lib.mkdir(parents=True)
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(service.pom), "dependency:copy-dependencies",
         f"-DoutputDirectory={service.lib}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise StackError(f"downloading the {service.name} jars failed (mvn exit {proc.returncode}):\n{tail}")
    marker.write_text("ok\n")


# --- processes ---------------------------------------------------------------------------


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def read_pid(service: Service) -> int | None:
    """The pid of the service this stack started, or None (and the stale pid file removed)."""
    entry = _read_pidfile(service.pidfile)
    if entry is None:
        return None
    pid, started = entry
    if not _alive(pid) or not _is_ours(pid, service, started):
        service.pidfile.unlink(missing_ok=True)
        return None
    return pid


def _read_pidfile(pidfile: Path) -> tuple[int, int | None] | None:
    """(pid, start time) from a pid file; the start time is None in a pid file written before it was recorded
    (just "PID"). None when the file is missing or unreadable."""
    try:
        fields = pidfile.read_text().split()
        pid = int(fields[0])
        started = int(fields[1]) if len(fields) > 1 else None
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid, started


def _write_pidfile(pidfile: Path, pid: int) -> None:
    """Record "PID STARTTIME": with the start time, a later pid recycled by another process is not taken for ours."""
    started = _start_time(pid)
    pidfile.write_text(f"{pid}\n" if started is None else f"{pid} {started}\n")


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 2 (comm) is in parentheses and may itself contain spaces and parentheses: split after the last ")"
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # fields[0] is field 3 (state), so field 22 is fields[19]
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    # `run` starts the services as its own children: reap an exited one, or it lingers as a
    # zombie that still answers kill(pid, 0)
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_ours(pid: int, service: Service, started: int | None = None) -> bool:
    # A recycled pid must never be killed: check it still runs from our lib folder and, when the pid file
    # recorded it, that it is the very process we started (same start time), not a later one with the same pid.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if str(service.lib) not in cmdline:
        return False
    return started is None or _start_time(pid) == started


def _spawn(service: Service, argv: list[str]) -> int:
    service.log.parent.mkdir(parents=True, exist_ok=True)
    service.pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(service.log, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {service.name} ===\n".encode())
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=STATE, start_new_session=True,  # survives the shell that ran `make up`
        )
    _write_pidfile(service.pidfile, proc.pid)
    return proc.pid


def kafka_config() -> Path:
    cfg = STATE / "kafka" / "server.properties"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        "\n".join([
            "# written by devstack/stack.py; edit the script, not this file",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={HOST}:{KAFKA_CONTROLLER_PORT}",
            f"listeners=PLAINTEXT://{HOST}:{KAFKA_PORT},CONTROLLER://{HOST}:{KAFKA_CONTROLLER_PORT}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{KAFKA_PORT},CONTROLLER://{HOST}:{KAFKA_CONTROLLER_PORT}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={KAFKA.data}",
            "num.partitions=3",
            # topics are created by `txnmon init` with the partitions we choose, never by a typo
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "",
        ])
    )
    log4j = STATE / "kafka" / "log4j2.yaml"
    log4j.write_text(
        "Configuration:\n"
        "  Appenders:\n"
        "    Console:\n"
        "      name: STDOUT\n"
        "      PatternLayout:\n"
        '        pattern: "[%d] %p %m (%c)%n"\n'
        "  Loggers:\n"
        "    Root:\n"
        "      level: WARN\n"
        "      AppenderRef:\n"
        "        - ref: STDOUT\n"
        "    Logger:\n"
        "      - name: kafka.server.KafkaServer\n"
        "        level: INFO\n"
    )
    return cfg


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's Uuid.randomUuid() makes it: URL-safe base64 of 16 random bytes, never
    starting with "-" (the storage tool's argument parser takes "-..." for an option: one format in 64
    failed with "argument --cluster-id/-t: expected one argument")."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def start_kafka(java: str) -> int:
    cfg = kafka_config()
    cp = f"{KAFKA.lib}/*"
    if not (KAFKA.data / "meta.properties").exists():
        KAFKA.data.mkdir(parents=True, exist_ok=True)
        cid = new_cluster_id()
        proc = subprocess.run(
            [java, "-cp", cp, "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(cfg), "--standalone"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise StackError(f"formatting the Kafka log dir failed:\n{proc.stdout}{proc.stderr}")
    heap = os.environ.get("DEVSTACK_KAFKA_HEAP", "-Xms256m -Xmx1g").split()
    return _spawn(KAFKA, [
        java, *heap, "-XX:+UseG1GC", *KAFKA.log_stops(), "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={STATE / 'kafka' / 'log4j2.yaml'}",
        "-cp", cp, "kafka.Kafka", str(cfg),
    ])


# The stand-in's collector. Each insert made much short-lived garbage: its unique `_id` index compared keys by
# Java-serializing both (H2's ObjectDataType with mongo-java-server's KeyValue), three quarters of its CPU under
# txnmon's load in a JFR profile of session 20 (now compared in place: TxnmonMongoServer's KeyOrder). G1 (its
# default pause goal 200 ms) then stopped the server for 150-300 ms several times a minute, which held the
# alert-latency tail (sessions 16-20). Shenandoah collects concurrently and, on JDK 17 unlike ZGC, also deduplicates
# strings (the page cache's memory, below). In make bench's sequence (100,000 rows, session 20) G1 gave a store
# ceiling of 6,533 and 6,718 docs/s and an alert p99 of 1,287 and 2,625 ms; Shenandoah 8,045 and 7,964, and 498 and
# 616 ms (476-1,302 in four more runs); e2e alike.
SHENANDOAH = ["-XX:+UseShenandoahGC", "-XX:+UseStringDeduplication"]
G1 = ["-XX:+UseG1GC", "-XX:+UseStringDeduplication"]


@functools.cache
def mongo_collector(java: str) -> list[str]:
    """Shenandoah when this JVM has it (OpenJDK builds do; some vendors' leave it out), else G1."""
    try:
        probe = subprocess.run([java, *SHENANDOAH, "-version"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return G1
    return SHENANDOAH if probe.returncode == 0 else G1


def mongo_command(java: str, port: int = MONGO_PORT, data_file: Path | None = None,
                  heap: list[str] | None = None, lib: Path | None = None, stops: bool = False) -> list[str]:
    """The command line of the MongoDB-wire server (tests start private ones with it); `stops`: log the JVM's
    stops (the stack's own server)."""
    if heap is None:
        # mongo-java-server keeps collections and its MVStore page cache (8 GB as H2 estimates it,
        # DEVSTACK_MONGO_CACHE_MB) on the heap: give it room. The cache holds deserialized documents
        # whose field names and repeated values are separate strings in every document; string
        # deduplication shares their bytes (measured with G1 after a full GC: 1M stored transactions 3.9 GB
        # live without it, 3.0 GB with it; 2M 5.7 GB with it, which the 8 GB heap of before could not hold).
        # The heap grows only with the data read: small stacks stay small.
        setting = os.environ.get("DEVSTACK_MONGO_HEAP")
        heap = setting.split() if setting is not None else ["-Xms256m", "-Xmx12g", *mongo_collector(java)]
    return [
        java, *heap, *(MONGO.log_stops() if stops else []), "-cp", f"{lib or MONGO.lib}/*",
        str(HERE / "mongo" / "TxnmonMongoServer.java"), HOST, str(port), str(data_file or MONGO.data / "txnmon.mv"),
    ]


def start_mongo(java: str) -> int:
    MONGO.data.mkdir(parents=True, exist_ok=True)
    return _spawn(MONGO, mongo_command(java, stops=True))


STARTERS = {"kafka": start_kafka, "mongo": start_mongo}


def wait_until_up(service: Service, pid: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if port_open(service.port):
            return
        if not _alive(pid):
            tail = "\n".join(service.log.read_text(errors="replace").splitlines()[-20:])
            service.pidfile.unlink(missing_ok=True)
            raise StackError(f"{service.name} exited during start-up; last lines of {service.log}:\n{tail}")
        time.sleep(0.25)
    raise StackError(
        f"{service.name} did not answer on {HOST}:{service.port} within {START_TIMEOUT_S:.0f}s; see {service.log}"
    )


def _select(names: list[str] | None) -> list[Service]:
    if not names:
        return list(SERVICES)
    unknown = [n for n in names if n not in {s.name for s in SERVICES}]
    if unknown:
        raise StackError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(s.name for s in SERVICES)}")
    return [s for s in SERVICES if s.name in names]


def up(names: list[str] | None = None) -> list[str]:
    """Start every (named) service that is not running; return the names this call started."""
    java = require_java()
    started: list[str] = []
    pending: list[tuple[Service, int]] = []
    for service in _select(names):
        if read_pid(service) is not None:
            say(f"{service.name} already running (pid {read_pid(service)})")
            continue
        if port_open(service.port):
            raise StackError(
                f"port {HOST}:{service.port} is taken by a process this stack did not start; "
                f"stop it or set DEVSTACK_{service.name.upper()}_PORT"
            )
        fetch(service)
        pid = STARTERS[service.name](java)
        say(f"starting {service.name} (pid {pid}), log: {service.log}")
        pending.append((service, pid))
    for service, pid in pending:
        wait_until_up(service, pid)
        say(f"{service.name} is up on {HOST}:{service.port}")
        started.append(service.name)
    return started


def stop_apps() -> None:
    """Stop what `make demo` left running (processor, dashboard): pid files in run/ of our own."""
    for pidfile in sorted((STATE / "run").glob("*.pid")):
        if pidfile.stem in {s.name for s in SERVICES}:
            continue
        entry = _read_pidfile(pidfile)
        if entry is None:
            pidfile.unlink(missing_ok=True)
            continue
        pid, started = entry
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            pidfile.unlink(missing_ok=True)
            continue
        if str(ROOT) in cmdline and (started is None or _start_time(pid) == started):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            say(f"{pidfile.stem} stopped")
        pidfile.unlink(missing_ok=True)


def down(names: list[str] | None = None) -> None:
    if not names:
        stop_apps()  # they talk to the services: stop them first
    for service in _select(names):
        pid = read_pid(service)
        if pid is None:
            say(f"{service.name} not running")
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            say(f"{service.name} ignored SIGTERM for 30s; killing it")
            os.kill(pid, signal.SIGKILL)
        service.pidfile.unlink(missing_ok=True)
        say(f"{service.name} stopped")


def status() -> int:
    all_up = True
    for service in SERVICES:
        pid = read_pid(service)
        answering = port_open(service.port)
        state = "up" if pid and answering else ("starting/unresponsive" if pid else "down")
        if state != "up":
            all_up = False
        extra = f" pid {pid}" if pid else ""
        print(f"{service.name:6} {state:22} {HOST}:{service.port}{extra}  log: {service.log}")
    print(f"data: {STATE}/<service>/data   logs: {STATE / 'logs'}")
    return 0 if all_up else 3


def run(cmd: list[str]) -> int:
    started = up()
    try:
        return subprocess.call(cmd)
    finally:
        if started:
            down(started)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    try:
        if verb == "fetch":
            require_java()
            for service in SERVICES:
                fetch(service)
            return 0
        if verb == "up":
            up(rest)
            return 0
        if verb == "down":
            down(rest)
            return 0
        if verb == "status":
            return status()
        if verb == "run":
            if rest[:1] == ["--"]:
                rest = rest[1:]
            if not rest:
                raise StackError("run needs a command: stack.py run -- CMD ...")
            return run(rest)
    except StackError as exc:
        print(f"[devstack] ERROR: {exc}", file=sys.stderr)
        return 1
    print(f"[devstack] unknown command {verb!r}; try: fetch, up, down, status, run", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
