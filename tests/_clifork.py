"""A fork server ("zygote") that runs `python -m nbops ...` for the tests without paying Python's
start and the libraries' imports on every call.

Contract. `run(command, cwd=, env=, timeout=)` returns the `subprocess.CompletedProcess` that
`subprocess.run(command, cwd=, env=, capture_output=True, text=True, timeout=, check=False)`
would return, or None when it cannot promise that (the caller then starts a real process):

- One zygote per test process, started on first use as a separate Python process (never a fork
  of the test process, which has threads and has run OpenMP code) with the test process's
  interpreter and its environment at start. It imports the third-party libraries the commands
  use (PRELOAD) and nothing of nbops, runs no computation, freezes what it imported out of the
  garbage collector's sight, then serves requests over a socket: for each it forks a child that
  takes exactly the request's environment, working directory, new output files on fds 1 and 2
  and /dev/null on fd 0, the interpreter's start-up signal handlers, `sys.argv`,
  `sys.orig_argv` and `sys.path[0]` as `-m` sets them, new random seeds, and runs the `nbops`
  module as `python -m` does (runpy). The child then ends as any interpreter does, through its
  own exit path: exit code (SystemExit None/int/text), traceback, Ctrl-C, non-daemon threads
  joined, atexit, files flushed and closed (no os._exit: that would skip the closing of files
  a command left open, for ~0.1 s saved). The zygote reports the child's pid, then its exit
  status (a signal as -N, as subprocess does).
- What the imports read when they ran cannot follow a later request: the zygote records every
  environment variable they read through os.environ (and a fixed list read below Python:
  OpenMP, BLAS, locale, allocator, PYTHON*, HOME, PATH, TMPDIR); a request whose environment
  differs from the zygote's in any of them gets None, as do another interpreter, a cwd that is
  not a directory, and a cwd holding a module named like one the zygote imported (`-m` puts
  cwd first on sys.path: a new process would import that module instead).
- The zygote checks its imports left nothing a new process would not have (a warning shown, a
  Python thread, open files, a changed environment, signal handler, sys.path, logging handler,
  recursion limit, tempfile.tempdir, a working directory kept, other than rich's and
  multiprocessing's, which a child sets to its own); if they did it refuses to serve and every
  call gets None. What remains different, knowingly: warning filters that the preloaded
  libraries install at import are present in a child even when its command does not import
  them (they concern those libraries' own warnings), and every child has the zygote's hash
  seed (PYTHONHASHSEED-like: set iteration order is the same from one command to the next).
- On timeout the child is killed and `subprocess.TimeoutExpired` raised, as subprocess.run does.
  A zygote that died between calls is started again once; any other failure of the machinery
  before the child runs gives None. A zygote that dies while its child runs leaves the child's
  exit status unknown: RuntimeError (running the command again could run it twice).
- One request at a time per test process: a second thread, or a fork of the test process,
  gets None. NBOPS_TEST_NO_FORK=1 in the environment: always None.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import locale
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DISABLE_ENV = "NBOPS_TEST_NO_FORK"

# What `nbops` commands import, measured (`-X importtime`): the CLI's typer/rich/pydantic,
# nbformat and jsonschema (export, tags, run), pandas/pyarrow/scipy.stats (infer-schema,
# validate, monitor), papermill and the Jupyter client side (run, ci, rerun, sweep), which
# looks up ipykernel's kernel spec (IPython with it). Not scikit-learn: its import sets KMP_*
# variables in os.environ, and it would save ~0.3 s on the few bundle commands only.
PRELOAD = [
    "typer",
    "typer.rich_utils",
    "rich.console",
    "rich.markdown",
    "pydantic",
    "pydantic.main",
    "pydantic.type_adapter",
    "pydantic.json_schema",
    "annotated_types",
    "sqlite3",
    "tomllib",
    "nbformat",
    "jsonschema",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy.stats",
    "papermill",
    "nbclient",
    "jupyter_client",
    "jupyter_client.manager",
    "ipykernel.kernelspec",
    "zmq",
    "tornado.ioloop",
    "yaml",
    "psutil",
]

# Read below Python (C libraries at load, the interpreter at start) or cached by the standard
# library, so never seen by the recorder: a request that changes one gets a real process.
_NATIVE_PREFIXES = (
    "PYTHON", "LC_", "OMP_", "GOMP_", "KMP_", "OPENBLAS_", "GOTO", "MKL_", "BLIS_", "NUMEXPR_",
    "MALLOC_", "LD_", "GLIBC_", "ARROW_", "JE_", "NPY_", "NUMPY_",
)  # fmt: skip
_NATIVE_NAMES = {"LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "PATH", "HOME"}


def _sensitive(name: str, read: frozenset[str]) -> bool:
    return name in read or name in _NATIVE_NAMES or name.startswith(_NATIVE_PREFIXES)


# What `import sklearn` puts into os.environ (setdefault) before it loads OpenMP: once a test
# in the test process has imported scikit-learn, every request's environment has these, and a
# new process that imports it ends with the same values. Only an other value is a difference.
_IMPORT_DEFAULTS = {"KMP_DUPLICATE_LIB_OK": "True", "KMP_INIT_AT_FORK": "FALSE"}


def _differs(name: str, zygote_env: Mapping[str, str], env: Mapping[str, str]) -> bool:
    if zygote_env.get(name) == env.get(name):
        return False
    default = _IMPORT_DEFAULTS.get(name)
    return default is None or {zygote_env.get(name), env.get(name)} - {None, default} != set()


# ---------------------------------------------------------------------------------------------
# The zygote (runs in its own process; standard library only until it preloads)


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def _lines(sock: socket.socket) -> Any:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield json.loads(line)


class _Recorder:
    """Records the environment variables read through os.environ, and whether the working
    directory was asked for, while it is active."""

    def __init__(self) -> None:
        self.read: set[str] = set()
        self.everything = False
        self.cwd: set[str] = set()  # the modules that asked for the working directory

    def __enter__(self) -> _Recorder:
        cls = os._Environ  # type: ignore[attr-defined]
        self._saved = (cls.__getitem__, cls.__iter__, os.getcwd)
        getitem, iterate, getcwd = self._saved
        recorder = self

        def __getitem__(env: Any, key: Any) -> Any:
            recorder.read.add(key.decode() if isinstance(key, bytes) else key)
            return getitem(env, key)

        def __iter__(env: Any) -> Any:
            recorder.everything = True
            return iterate(env)

        def cwd() -> str:
            recorder.cwd.add(sys._getframe(1).f_globals.get("__name__", "?"))
            return getcwd()

        cls.__getitem__, cls.__iter__, os.getcwd = __getitem__, __iter__, cwd
        return self

    def __exit__(self, *exc: object) -> None:
        cls = os._Environ  # type: ignore[attr-defined]
        cls.__getitem__, cls.__iter__, os.getcwd = self._saved


def _preload() -> tuple[list[str], list[str]]:
    """Import PRELOAD; the variables read, and what the imports changed that they must not."""
    import logging
    import warnings

    handlers = {s: signal.getsignal(s) for s in _signals()}
    env, path, fds = dict(os.environ), list(sys.path), set(os.listdir("/proc/self/fd"))
    limit = sys.getrecursionlimit()
    shown: list[str] = []
    showwarning = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        with _Recorder() as recorder:
            for name in PRELOAD:
                with contextlib.suppress(ImportError):  # then no command can use it either
                    __import__(name)
    finally:
        warnings.showwarning = showwarning
    checks = {
        # A fresh process importing the library would show them; a child would not.
        f"warnings shown at import: {shown}": bool(shown),
        "the whole environment was read": recorder.everything,
        f"the working directory was read by {recorder.cwd - set(_CWD_AT_IMPORT)}": bool(
            recorder.cwd - set(_CWD_AT_IMPORT)
        ),
        "the environment changed": dict(os.environ) != env,
        "sys.path changed": sys.path != path,
        "signal handlers changed": any(signal.getsignal(s) != h for s, h in handlers.items()),
        "a Python thread started": threading.active_count() != 1,
        "files or sockets left open": bool(set(os.listdir("/proc/self/fd")) - fds),
        "logging configured": bool(logging.root.handlers),
        "tempfile.tempdir set": tempfile.tempdir is not None,
        "the recursion limit changed": sys.getrecursionlimit() != limit,
    }
    return sorted(recorder.read), [problem for problem, found in checks.items() if found]


def _set_rich_cwd() -> None:
    sys.modules["rich"]._IMPORT_CWD = os.path.abspath(os.getcwd())


# Modules that keep the working directory they were imported in, and how a child sets it to its
# own (rich: to show relative paths in its tracebacks; multiprocessing: for the processes it
# spawns).
def _set_multiprocessing_cwd() -> None:
    sys.modules["multiprocessing.process"].ORIGINAL_DIR = os.path.abspath(os.getcwd())


_CWD_AT_IMPORT = {"rich": _set_rich_cwd, "multiprocessing.process": _set_multiprocessing_cwd}


def _signals() -> list[signal.Signals]:
    return [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]


def zygote_main(fd: int) -> None:
    """Serve requests on the socket `fd` until it closes. Returns only in a forked child, set up
    to run the command (the caller then runs `run_module`)."""
    handlers = {s: signal.getsignal(s) for s in _signals()}  # the interpreter's, at start
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C at the terminal is for the tests
    sock = socket.socket(fileno=fd)
    main = _nbops_main_path()
    # As `nbops`'s main() does before any command imports jsonschema (cli/common.py).
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    sys.argv = [main]  # what a module reading sys.argv at import sees under `-m nbops`
    read, problems = _preload()
    if problems:
        _send(sock, {"refused": problems})
        return os._exit(0)
    gc.collect()
    gc.freeze()  # children then neither scan nor copy (refcount writes) the imports' objects
    modules = sorted({name.partition(".")[0] for name in sys.modules})
    _send(sock, {"ready": read, "modules": modules})
    for request in _lines(sock):
        sys.stdout.flush()
        sys.stderr.flush()
        ready_r, ready_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(ready_r)
            os.close(ready_w)
            _send(sock, {"error": f"fork: {exc}"})
            continue
        if pid == 0:
            os.close(ready_r)
            _become(request, sock, ready_w, handlers, main)
            return
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            failure = ready.read()  # empty: the child closed it, set up
        if failure:
            os.waitpid(pid, 0)
            _send(sock, {"error": failure.decode(errors="replace")})
            continue
        _send(sock, {"started": pid})
        _, status, usage = os.wait4(pid, 0)
        cpu = usage.ru_utime + usage.ru_stime
        _send(sock, {"status": os.waitstatus_to_exitcode(status), "cpu": cpu})
    os._exit(0)


def _nbops_main_path() -> str:
    import importlib.util

    spec = importlib.util.find_spec("nbops")  # finds it without importing it
    origin = spec.origin if spec else None
    return str(Path(origin).with_name("__main__.py")) if origin else "-m"


def _become(
    request: dict[str, Any], sock: socket.socket, ready_w: int, handlers: dict[Any, Any], main: str
) -> None:
    """In the child: the request's process, as `python -m nbops` starts it."""
    try:
        sock.close()
        for number, handler in handlers.items():
            if handler is not None:  # None: set outside Python, left as inherited
                signal.signal(number, handler)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for source, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(source, target)
            os.close(source)
        if not sys.flags.safe_path:
            sys.path.insert(0, os.getcwd())  # `-m` puts the working directory first
        sys.argv = [main, *request["argv"][3:]]
        sys.orig_argv = list(request["argv"])
        for module in _CWD_AT_IMPORT.keys() & sys.modules.keys():
            _CWD_AT_IMPORT[module]()
        importlib.invalidate_caches()  # directories listed in the zygote may have changed
        if "numpy.random" in sys.modules:  # its global generator was seeded in the zygote
            sys.modules["numpy.random"].seed()
        if "multiprocessing.process" in sys.modules:  # as were multiprocessing's secrets
            sys.modules["multiprocessing.process"].current_process().authkey = os.urandom(32)
    except BaseException as exc:
        os.write(ready_w, f"child set-up: {exc!r}".encode() or b"?")
        os._exit(127)
    os.close(ready_w)


def run_child() -> None:
    """What `python -m nbops` runs, in the child `zygote_main` returned in."""
    import runpy

    runpy.run_module("nbops", run_name="__main__", alter_sys=True)


_BOOTSTRAP = """\
import sys
del sys.path[0]
import importlib.util as _u
_s = _u.spec_from_file_location("_clifork_zygote", {path!r})
_m = _u.module_from_spec(_s)
_s.loader.exec_module(_m)
del _u, _s
_m.zygote_main({fd})
_m.run_child()
"""


# ---------------------------------------------------------------------------------------------
# The client (in the test process)


class _Zygote:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self.env = dict(_START_ENV)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP.format(path=__file__, fd=theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
            cwd="/",
        )
        theirs.close()
        self.sock = ours
        self.buffer = b""
        try:
            hello = self.next(timeout=300)  # generous: imports on a loaded machine
        except (OSError, TimeoutError):
            hello = None
        if hello is None or "ready" not in hello:
            self.close()
            raise _Unavailable(f"the zygote did not start: {hello}")
        self.read = frozenset(hello["ready"])
        self.modules = frozenset(hello["modules"])

    def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message; None when the zygote has closed; TimeoutError after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if deadline is not None:
                left = max(deadline - time.monotonic(), 0)
                if not select.select([self.sock], [], [], left)[0]:
                    raise TimeoutError
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def pending(self) -> bool:
        """A message has arrived (without waiting)."""
        return b"\n" in self.buffer or bool(select.select([self.sock], [], [], 0)[0])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Unavailable(Exception):
    """The zygote cannot take this request: run a real process."""


# The environment the test process started with: not a test's monkeypatched one.
_START_ENV = dict(os.environ)
_lock = threading.Lock()
_state: dict[str, Any] = {"zygote": None, "owner": None, "broken": False, "forked": 0}


def forked() -> int:
    """How many commands ran in a forked child so far (for tests of the fork server)."""
    return int(_state["forked"])


def _shadowed(cwd: Path, modules: frozenset[str]) -> bool:
    """`python -m` puts cwd first on sys.path: a module there named like one the zygote has
    imported would be imported by a fresh process instead of it."""
    with os.scandir(cwd) as entries:
        for entry in entries:
            name, dot, suffix = entry.name.partition(".")
            if name not in modules:
                continue
            if entry.is_dir() and os.path.exists(os.path.join(entry.path, "__init__.py")):
                return True
            if dot and suffix.rpartition(".")[2] in ("py", "pyc", "so"):
                return True
    return False


def _zygote() -> _Zygote:
    zygote = _state["zygote"]
    if zygote is not None and zygote.alive():
        return zygote
    if zygote is not None:
        zygote.close()
        _state["zygote"] = None
    if _state["broken"]:
        raise _Unavailable("the zygote failed to start before")
    try:
        zygote = _Zygote()
    except _Unavailable:
        _state["broken"] = True
        raise
    _state["zygote"] = zygote
    if not _state.get("atexit"):
        atexit.register(_stop)
        _state["atexit"] = True
    return zygote


def _stop() -> None:
    """At the test process's end: the zygote sees its socket close, and ends."""
    zygote = _state["zygote"]
    if zygote is not None and _state["owner"] == os.getpid():
        zygote.close()
        _state["zygote"] = None


def run(
    command: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str] | None:
    """See the module docstring."""
    env = dict(os.environ if env is None else env)
    if (
        os.environ.get(DISABLE_ENV) == "1"
        or env.get(DISABLE_ENV) == "1"
        or list(command[:3]) != [sys.executable, "-m", "nbops"]
        or not os.path.isdir(cwd)
    ):
        return None
    if _state["owner"] not in (None, os.getpid()):
        return None  # a fork of the test process: the zygote is its parent's
    if not _lock.acquire(blocking=False):
        return None  # another thread is using it: one request at a time
    try:
        _state["owner"] = os.getpid()
        for attempt in range(2):
            try:
                zygote = _zygote()
                if zygote.env.get("PYTHONPATH") != env.get("PYTHONPATH"):
                    return None
                changed = {
                    k for k in zygote.env.keys() | env.keys() if _differs(k, zygote.env, env)
                }
                if any(_sensitive(k, zygote.read) for k in changed):
                    return None
                if _shadowed(Path(cwd), zygote.modules):
                    return None
                done = _request(zygote, list(command), Path(cwd), env, timeout)
                _state["forked"] += 1
                return done
            except _Restart:
                if attempt:
                    return None
            except _Unavailable:
                return None
        return None
    finally:
        _lock.release()


class _Restart(Exception):
    """The zygote died before starting the child: start another and try again."""


def _request(
    zygote: _Zygote,
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float | None,
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="nbops-clifork-") as scratch:
        out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
        request = {
            "argv": command,
            "cwd": os.path.abspath(cwd),
            "env": env,
            "stdout": str(out),
            "stderr": str(err),
        }
        start = time.monotonic()
        try:
            _send(zygote.sock, request)
            answer = zygote.next(timeout=120)
        except (OSError, TimeoutError) as exc:
            zygote.proc.kill()
            raise _Restart from exc
        if answer is None:
            raise _Restart
        if "started" not in answer:
            raise _Unavailable(str(answer))
        pid = answer["started"]
        try:
            remaining = None if timeout is None else timeout - (time.monotonic() - start)
            status = zygote.next(timeout=remaining)
        except TimeoutError:
            if not zygote.pending():  # else it has just ended and may be reaped: not its pid
                os.kill(pid, signal.SIGKILL)
            zygote.next(timeout=60)  # the zygote reaps it and reports
            raise subprocess.TimeoutExpired(  # as subprocess.run's: the bytes read, or None
                command,
                timeout or 0,
                output=out.read_bytes() or None if out.exists() else None,
                stderr=err.read_bytes() or None if err.exists() else None,
            ) from None
        if status is None or "status" not in status:
            raise RuntimeError(
                f"the test zygote died while {' '.join(command[2:])} ran (pid {pid}): its exit"
                f" status is unknown; run again, or with {DISABLE_ENV}=1"
            )
        _state["cpu"] = status.get("cpu")  # the child's CPU seconds, for measurements
        return subprocess.CompletedProcess(command, status["status"], _text(out), _text(err))


def _text(path: Path) -> str:
    """A captured stream as subprocess.run(text=True) decodes it."""
    data = path.read_bytes() if path.exists() else b""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")
