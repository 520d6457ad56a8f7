"""Sandboxed tasks: each attempt of a ``sandbox=True`` task runs in a child process.

For CPU-bound or untrusted code: the worker's event loop stays free, the
task's ``timeout`` is a hard deadline (the child gets SIGKILL), a crash of the
child (a segfault, ``os._exit``) cannot take the worker down, and a
cancellation or a lost lease kills the child too.

The child is a fresh interpreter (``sys.executable -c ...``), started with
asyncio's subprocess support, so nothing is pickled and no thread waits on
it. It imports the task's function by module path and runs it. The two
talk over pipes in frames (4-byte big-endian length, then JSON):

- parent -> child, on its stdin: one :class:`_Request` (the job's payload is
  passed on as the JSON it already is). stdin then stays open: end-of-file
  tells the child that the worker died, and the child exits.
- child -> parent, on its original stdout: progress and log lines as they
  come, then one result or error. The task's own ``print`` goes to stderr.

A child that ends without an answer is reported as
:class:`~conveyor.errors.SandboxCrashedError` naming the signal or exit
code; an exception in the task is recorded with its own type, message and
traceback (:class:`~conveyor.errors.RemoteTaskError`). Either is retried per the task's policy;
a ``QueueBackoff`` raised in the child backs the queue off, as in the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import msgspec

from conveyor import serialization
from conveyor.errors import (
    JobTimeoutError,
    ProgrammingError,
    QueueBackoff,
    RemoteNonRetryableError,
    RemoteQueueBackoff,
    RemoteRetry,
    RemoteTaskError,
    Retry,
    SandboxCrashedError,
    SandboxProtocolError,
)
from conveyor.jobs.context import JobContext, _current
from conveyor.jobs.task import Task

if TYPE_CHECKING:
    from conveyor.stores.base import ClaimedJob

_CHILD_COMMAND = "from conveyor.jobs.sandbox import child_main; child_main()"
_FLUSH_SECONDS = 0.1
"""How often the child sends buffered progress and log lines."""


class _Request(msgspec.Struct):
    module: str
    qualname: str
    sys_path: list[str]
    payload: msgspec.Raw
    job_id: str
    task: str
    queue: str
    attempt: int
    token: str
    fence: int
    limit: int


class _Progress(msgspec.Struct, tag="progress", tag_field="kind"):
    value: msgspec.Raw


class _Log(msgspec.Struct, tag="log", tag_field="kind"):
    line: str


class _Returned(msgspec.Struct, tag="result", tag_field="kind"):
    value: msgspec.Raw


class _Raised(msgspec.Struct, tag="error", tag_field="kind"):
    type: str
    message: str
    traceback: str
    mro: list[str]
    """Qualified names of the exception's classes, so the parent can apply the retry policy."""
    delay: float | None = None
    backoff: float | None = None
    """A ``QueueBackoff``'s seconds: the parent backs the queue off instead of failing."""


_Message = _Progress | _Log | _Returned | _Raised
_message_decoder = msgspec.json.Decoder(_Message)
_request_decoder = msgspec.json.Decoder(_Request)
_encoder = msgspec.json.Encoder()


_FINAL_IN_CHILD = {
    "conveyor.errors.NonRetryableError",
    "conveyor.errors.SerializationError",
}


def check_importable(fn: Callable[..., Any]) -> None:
    """A sandboxed task's function must be importable by module path in a fresh process."""
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None)
    if not module or module == "__main__" or "<" in qualname:
        raise ProgrammingError(
            f"sandbox=True needs a function importable by module path, got {module}.{qualname}:"
            " define it at the top level of an importable module (not __main__, not a lambda"
            " or nested function)"
        )


# -- the worker's side ------------------------------------------------------------


async def run_in_sandbox(
    task: Task[Any, Any], job: ClaimedJob, ctx: JobContext, timeout: float | None, limit: int
) -> Any:
    """Run one attempt of ``task`` in a child process; return its result or raise."""
    request = _Request(
        module=task.fn.__module__,
        qualname=task.fn.__qualname__,
        sys_path=list(sys.path),
        payload=msgspec.Raw(job.payload),
        job_id=job.id,
        task=job.task,
        queue=job.queue,
        attempt=job.attempts,
        token=job.token,
        fence=job.fence,
        limit=limit,
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_COMMAND,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: _end kills the task's children too
    )
    assert child.stdin is not None
    assert child.stdout is not None
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            child.stdin.write(_frame(_encoder.encode(request)))
            await child.stdin.drain()
            answer = await _read_answer(child.stdout, ctx, _max_frame(limit))
            returncode = await child.wait()
    except TimeoutError:
        if deadline.expired():
            raise JobTimeoutError(timeout or 0.0) from None
        raise
    finally:
        await _end(child)
    if answer is None:
        raise SandboxCrashedError(returncode)
    if isinstance(answer, _Returned):
        return serialization.loads(answer.value)
    raise _remote_error(answer, task)


async def _read_answer(
    reader: asyncio.StreamReader, ctx: JobContext, max_frame: int
) -> _Returned | _Raised | None:
    """Apply progress and log lines until the answer; None if the child ended without one.

    A frame larger than ``max_frame`` or not a message raises
    :class:`SandboxProtocolError` (the caller then kills the child).
    """
    while True:
        try:
            size = int.from_bytes(await reader.readexactly(4), "big")
            if size > max_frame:
                raise SandboxProtocolError(f"sent a frame of {size} bytes (at most {max_frame})")
            message: _Message = _message_decoder.decode(await reader.readexactly(size))
        except asyncio.IncompleteReadError:
            return None
        except msgspec.DecodeError as exc:
            raise SandboxProtocolError(f"sent a frame that is not a message ({exc})") from None
        if isinstance(message, _Progress):
            ctx.set_progress(serialization.loads(message.value))
        elif isinstance(message, _Log):
            ctx.log(message.line)
        else:
            return message


async def _end(child: asyncio.subprocess.Process) -> None:
    """Kill the child and its own children if it still runs, and reap it.

    What the child still had in the pipe is read and dropped: ``wait()``
    returns only once its stdout is closed, and a child blocked on a full pipe
    would otherwise never let go of it.
    """
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the group of its session (start_new_session)
    if child.stdin is not None:
        child.stdin.close()
    if child.stdout is not None:
        while await child.stdout.read(65_536):
            pass
    await child.wait()


def _remote_error(raised: _Raised, task: Task[Any, Any]) -> RemoteTaskError:
    """The worker's stand-in for what the child raised, steering retries as it would have."""
    seen = (raised.type, raised.message, raised.traceback)
    if raised.backoff is not None:
        return RemoteQueueBackoff(*seen, raised.backoff)
    final = {f"{cls.__module__}.{cls.__qualname__}" for cls in task.non_retryable}
    if _FINAL_IN_CHILD.intersection(raised.mro) or final.intersection(raised.mro):
        return RemoteNonRetryableError(*seen)
    if "conveyor.errors.Retry" in raised.mro:
        return RemoteRetry(*seen, raised.delay)
    return RemoteTaskError(*seen)


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def _max_frame(limit: int) -> int:
    return 2 * limit + 65_536  # a result at the limit, or a long traceback


# -- the child's side -------------------------------------------------------------


def child_main() -> None:
    """Entry point of the child process (see the module docstring)."""
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # the task's own prints go to stderr, never into the channel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the worker's to handle
    stdin = sys.stdin.buffer
    request = _request_decoder.decode(_read_frame(stdin))
    threading.Thread(target=_exit_when_parent_dies, args=(stdin,), daemon=True).start()
    sys.path[:] = request.sys_path
    send = _Sender(channel)
    ctx = JobContext(
        request.job_id,
        request.task,
        request.queue,
        request.attempt,
        request.token,
        request.limit,
        request.fence,
    )
    _current.set(ctx)
    stop = threading.Event()
    flusher = threading.Thread(target=_flush_until, args=(ctx, send, stop), daemon=True)
    flusher.start()
    answer = _call(request)
    stop.set()
    flusher.join()
    _flush(ctx, send)
    send(answer)
    os._exit(0)  # no atexit hooks or lingering threads of the task can hold the answer back


def _call(request: _Request) -> _Returned | _Raised:
    try:
        fn = _resolve(request.module, request.qualname)
        args, kwargs = serialization.decode_call(request.payload)
        if inspect.iscoroutinefunction(fn):
            value = asyncio.run(fn(*args, **kwargs))
        else:
            value = fn(*args, **kwargs)
        encoded = serialization.dumps(value, what="job result", limit=request.limit)
        return _Returned(msgspec.Raw(encoded))
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: report, don't die
        return _raised(exc, request.limit)


def _resolve(module: str, qualname: str) -> Callable[..., Any]:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if isinstance(target, Task):  # decorated at module level
        return target.fn
    if not callable(target):
        raise ProgrammingError(f"{module}.{qualname} is not callable")
    return target  # type: ignore[no-any-return]


def _raised(exc: BaseException, limit: int) -> _Raised:
    delay = exc.delay if isinstance(exc, Retry) else None
    return _Raised(
        type=type(exc).__qualname__,
        message=serialization.clip(str(exc), limit),
        traceback=serialization.clip("".join(traceback.format_exception(exc)), limit, tail=True),
        mro=[f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__],
        delay=delay,
        backoff=exc.seconds if isinstance(exc, QueueBackoff) else None,
    )


class _Sender:
    """Writes frames to the parent; the flusher thread and the main thread share it."""

    def __init__(self, channel: IO[bytes]) -> None:
        self._channel = channel
        self._lock = threading.Lock()

    def __call__(self, message: _Message) -> None:
        frame = _frame(_encoder.encode(message))
        with self._lock:
            self._channel.write(frame)


def _flush(ctx: JobContext, send: _Sender) -> None:
    if not ctx.dirty:
        return
    update = ctx.take_update()
    for line in update.logs:
        send(_Log(line.line))
    if update.progress is not None:
        send(_Progress(msgspec.Raw(update.progress)))


def _flush_until(ctx: JobContext, send: _Sender, stop: threading.Event) -> None:
    while not stop.wait(_FLUSH_SECONDS):
        _flush(ctx, send)


def _read_frame(stream: IO[bytes]) -> bytes:
    size = int.from_bytes(_read_exactly(stream, 4), "big")
    return _read_exactly(stream, size)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            os._exit(1)  # the worker went away before sending the request
        data += chunk
    return data


def _exit_when_parent_dies(stdin: IO[bytes]) -> None:
    while stdin.read(1):
        pass
    os._exit(1)
