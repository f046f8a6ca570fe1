/**
 * The guest half of the exec service (see execd.ts): a small Python program that sshd starts
 * once per connection, on one exec channel, as the agent. The host sends it down that channel
 * before the first frame (nothing is installed in the image); it runs with `python3 -I -S` (no
 * site, no user paths, no PYTHON* variables) and only the standard library.
 *
 * Why it exists: under TCG a new sshd session costs ~60 ms (sshd forks and sets up a session,
 * then execs the login shell) and the login shell another ~60 ms before the command starts. This
 * program keeps two shells already started, each in its own session and process group (setsid),
 * blocked on a pipe; a command is written to one of them and runs at once, and a fresh one is
 * started for the next command. Everything it does for a command is what the sshd path's
 * wrapper does (cd, export the caller's variables and the exec tag, run the command through the
 * same shell), so the command sees the same environment, user, session and process group.
 *
 * Frames, both directions: 1 byte type, 4 bytes id, 4 bytes length (big endian), payload.
 *   host -> guest: S start (JSON {script, shell}), I stdin bytes, E stdin EOF
 *   guest -> host: H hello (JSON {v, pid}), P pid (ASCII), O stdout, R stderr,
 *                  X exit (JSON {code, signal}; sent once the process is reaped AND both output
 *                  pipes reached EOF, as sshd closes a session), F failed to start (JSON {message})
 * On EOF of its stdin (the channel closed) it kills every process group it started and exits.
 */
export const EXECD_VERSION = 1;

export const EXECD_SOURCE = String.raw`
import os, sys, json, signal, struct, select, selectors
VERSION = ${EXECD_VERSION}
HDR = struct.Struct(">cII")
MAX_FRAME = 4 << 20
POOL = 2
out = sys.stdout.buffer.raw if hasattr(sys.stdout.buffer, "raw") else sys.stdout.buffer
inp = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
login_shell = os.environ.get("SHELL") or "/bin/sh"
# The warm shell reads its script (NUL-terminated) from fd 3, closes it and runs it; a shell whose
# fd 3 reaches EOF without a script (the pool is shutting down) just exits.
WARM = "IFS= read -r -d \"\" __cowork_script <&3 || exit 0; exec 3<&-; eval \"$__cowork_script\""
DEFAULT_SIGS = [s for s in (getattr(signal, n, None) for n in ("SIGPIPE", "SIGXFSZ", "SIGINT", "SIGQUIT", "SIGTERM", "SIGHUP", "SIGCHLD", "SIGUSR1", "SIGUSR2")) if s is not None]

def send(kind, ident, payload=b""):
    view = memoryview(HDR.pack(kind, ident, len(payload)) + payload)
    while view:
        try:
            n = out.write(view)
        except BlockingIOError:
            n = None
        if n is None:
            select.select([], [out.fileno()], [])
            continue
        view = view[n:]

sel = selectors.DefaultSelector()

class Shell:
    def __init__(self, shell):
        self.shell = shell
        self.ident = None
        in_r, self.stdin = os.pipe()
        self.stdout, out_w = os.pipe()
        self.stderr, err_w = os.pipe()
        self.script_r, self.script = os.pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, in_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
            (os.POSIX_SPAWN_DUP2, self.script_r, 3),
        ]
        try:
            self.pid = os.posix_spawn(shell, [shell, "-c", WARM], dict(os.environ), file_actions=actions, setsid=True, setsigdef=DEFAULT_SIGS, setsigmask=[])
        finally:
            for fd in (in_r, out_w, err_w, self.script_r):
                os.close(fd)
        dead.discard(self.pid)
        self.status = None
        self.open = 2
        self.pending = bytearray()
        self.stdin_eof = False
        self.waiting = False

    def hand(self, script):
        """Gives the warm shell its script; False when it died while waiting (EPIPE)."""
        data = script.encode() + b"\0"
        try:
            while data:
                n = os.write(self.script, data)
                data = data[n:]
        except OSError:
            return False
        finally:
            os.close(self.script)
            self.script = None
        return True

    def start(self, ident):
        self.ident = ident
        running[self.pid] = self
        send(b"P", ident, str(self.pid).encode())
        for fd, kind in ((self.stdout, b"O"), (self.stderr, b"R")):
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, (self, kind))
        os.set_blocking(self.stdin, False)

    def feed(self, data, eof):
        if self.stdin is None:
            return
        self.pending += data
        self.stdin_eof = self.stdin_eof or eof
        self.flush_stdin()

    def flush_stdin(self):
        try:
            while self.pending:
                n = os.write(self.stdin, self.pending)
                del self.pending[:n]
        except BlockingIOError:
            if not self.waiting:
                sel.register(self.stdin, selectors.EVENT_WRITE, (self, b"W"))
                self.waiting = True
            return
        except OSError:
            self.pending.clear()
            self.stdin_eof = True
        if self.waiting:
            sel.unregister(self.stdin)
            self.waiting = False
        if self.stdin_eof:
            os.close(self.stdin)
            self.stdin = None

    def output(self, fd, kind):
        if kind == b"W":
            self.flush_stdin()
            return
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            send(kind, self.ident, chunk)
            return
        sel.unregister(fd)
        os.close(fd)
        self.open -= 1
        self.finish()

    def finish(self):
        if self.open or self.status is None:
            return
        st = self.status
        code = os.WEXITSTATUS(st) if os.WIFEXITED(st) else None
        sig = None
        if os.WIFSIGNALED(st):
            try:
                sig = signal.Signals(os.WTERMSIG(st)).name[3:]
            except ValueError:
                sig = str(os.WTERMSIG(st))
        running.pop(self.pid, None)
        by_id.pop(self.ident, None)
        if self.stdin is not None:
            if self.waiting:
                sel.unregister(self.stdin)
            os.close(self.stdin)
            self.stdin = None
        send(b"X", self.ident, json.dumps({"code": code, "signal": sig}).encode())

    def discard(self):
        for fd in (self.stdin, self.stdout, self.stderr, self.script):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

pools = {}
running = {}
by_id = {}

def warm(shell):
    pool = pools.setdefault(shell, [])
    while len(pool) < POOL:
        try:
            pool.append(Shell(shell))
        except OSError:
            return

def take(shell):
    pool = pools.get(shell) or []
    while pool:
        s = pool.pop(0)
        if s.pid not in dead:
            return s
        dead.discard(s.pid)
        s.discard()
    return Shell(shell)

dead = set()

def reap():
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        s = running.get(pid)
        if s is not None:
            s.status = st
            s.finish()
        else:
            dead.add(pid)

def start(ident, payload):
    try:
        req = json.loads(payload)
        shell = req.get("shell") or login_shell
        s = take(shell)
        while not s.hand(req["script"]):
            s.discard()
            s = Shell(shell)
    except Exception as e:
        send(b"F", ident, json.dumps({"message": str(e)}).encode())
        return
    by_id[ident] = s
    s.start(ident)
    warm(shell)

def shutdown():
    for s in list(running.values()):
        try:
            os.killpg(s.pid, signal.SIGKILL)
        except OSError:
            pass
    for pool in pools.values():
        for s in pool:
            s.discard()
    sys.exit(0)

wake_r, wake_w = os.pipe()
os.set_blocking(wake_r, False)
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *_: None)
sel.register(wake_r, selectors.EVENT_READ, None)
os.set_blocking(inp.fileno(), False)
sel.register(inp.fileno(), selectors.EVENT_READ, "host")
buf = bytearray()
warm(login_shell)
send(b"H", 0, json.dumps({"v": VERSION, "pid": os.getpid()}).encode())
while True:
    for key, _ in sel.select():
        what = key.data
        if what is None:
            try:
                os.read(wake_r, 4096)
            except OSError:
                pass
            reap()
        elif what == "host":
            try:
                chunk = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                shutdown()
            buf += chunk
            while len(buf) >= HDR.size:
                kind, ident, n = HDR.unpack_from(buf)
                if n > MAX_FRAME:
                    shutdown()
                if len(buf) < HDR.size + n:
                    break
                payload = bytes(buf[HDR.size:HDR.size + n])
                del buf[:HDR.size + n]
                if kind == b"S":
                    start(ident, payload)
                elif kind in (b"I", b"E"):
                    s = by_id.get(ident)
                    if s is not None:
                        s.feed(payload, kind == b"E")
        else:
            what[0].output(key.fd, what[1])
    reap()
`;
