"""A command that ends early says so in one line: no asyncio report of the kernel client's
leftover tasks (a `Task exception was never retrieved` traceback at exit) follows it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from nbops.errors import KernelDiedError

# A command whose kernel client left a task holding an exception nobody retrieves (as
# nbclient's do when the kernel dies under a Ctrl-C), then ends with `ending`.
SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    from nbops.cli.common import _handles_errors
    from nbops.errors import KernelDiedError

    async def watch():
        raise RuntimeError("Kernel died")

    LEFT = []  # the client's tasks, collected once the command has ended

    def command():
        loop = asyncio.new_event_loop()
        LEFT.append(loop.create_task(watch()))
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()
        {ending}

    try:
        _handles_errors(command)()
    except SystemExit:
        raise
    except BaseException as exc:  # typer.Exit
        LEFT.clear()
        gc.collect()
        sys.exit(getattr(exc, "exit_code", 99))
    """
)


@pytest.mark.parametrize(
    ("ending", "code", "line"),
    [
        ("raise KeyboardInterrupt", 130, "nbops: interrupted"),
        (
            "raise KernelDiedError('the kernel died')",
            KernelDiedError.exit_code,
            "nbops: error: the kernel died",
        ),
    ],
)
def test_an_early_end_prints_its_one_line_and_no_leftover_task_traceback(
    ending: str, code: int, line: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(ending=ending)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.strip().startswith(line), proc.stderr
    assert "Traceback" not in proc.stderr and "never retrieved" not in proc.stderr, proc.stderr
