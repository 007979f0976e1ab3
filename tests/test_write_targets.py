"""Files the user names (``-o``, ``--figures``): devices and FIFOs are written in place or
refused, never replaced by the atomic rename; symlinks are followed; every write error is
one line naming what the user named (real devices, a real FIFO, a real read-only mount)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.trainer import RunOptions
from fnn_tui.report.files import CannotWrite, temp_name, write_text
from fnn_tui.runs.record import record_run

runner = CliRunner()


def _char_device(path: str) -> bool:
    return stat.S_ISCHR(os.stat(path).st_mode)


@pytest.fixture
def one_run(home: Path, catalog) -> int:
    return record_run(home, catalog.get("exp07").with_overrides(samples=200, epochs=1), RunOptions(engine="fused")).run_id


def _one_line_error(result, *names: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    for name in names:
        assert f"cannot write {name}: " in lines[0], lines[0]
    assert ".tmp" not in lines[0]
    return lines[0]


# --- the rule, on the writer itself ------------------------------------------------------


def test_dev_null_is_written_in_place_and_stays_a_device() -> None:
    write_text("/dev/null", "a report\n")
    assert _char_device("/dev/null")


def test_dev_full_is_one_error_naming_it_and_stays_a_device() -> None:
    with pytest.raises(CannotWrite) as caught:
        write_text("/dev/full", "a report\n" * 1000)
    assert str(caught.value) == "cannot write /dev/full: No space left on device"
    assert _char_device("/dev/full")


def test_a_fifo_without_a_reader_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(CannotWrite, match="pipe: it is a FIFO"):
        write_text(fifo, "x")
    assert time.monotonic() - started < 5
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_fifo_with_a_reader_gets_the_text_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(Path(fifo).read_bytes()), daemon=True)
    reader.start()
    text = "line\n" * 50_000  # more than a pipe holds: the writer waits for the reader
    for _ in range(200):  # the reader's open() must be in place before the writer looks
        try:
            write_text(fifo, text)
            break
        except CannotWrite:
            time.sleep(0.02)
    reader.join(timeout=20)
    assert got == [text.encode()]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_socket_and_a_folder_are_refused(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(CannotWrite, match="s: it is a socket"):
            write_text(tmp_path / "s", "x")
    finally:
        sock.close()
    with pytest.raises(CannotWrite, match="it is a folder"):
        write_text(tmp_path, "x")
    assert stat.S_ISSOCK(os.stat(tmp_path / "s").st_mode)


def test_a_symlink_is_followed_its_target_written_atomically(tmp_path: Path) -> None:
    real = tmp_path / "real" / "report.md"
    real.parent.mkdir()
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.md"
    link.symlink_to(real)
    write_text(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new\n" and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert [p.name for p in real.parent.iterdir()] == ["report.md"]  # the temp file went next to the target
    dangling = tmp_path / "dangling.md"
    dangling.symlink_to(tmp_path / "real" / "later.md")
    write_text(dangling, "made\n")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.md").read_text() == "made\n"
    # a link to a device is the device: written in place
    to_null = tmp_path / "null"
    to_null.symlink_to("/dev/null")
    write_text(to_null, "x")
    assert to_null.is_symlink() and _char_device("/dev/null")


def test_the_longest_name_still_gets_its_temp_file(tmp_path: Path) -> None:
    name = "é" * 100 + "r" * 51 + ".md"  # 254 bytes: fits, but ".<name>.<hash>.tmp" would not
    assert len(os.fsencode(name)) == 254 and len(os.fsencode(temp_name(name))) <= 255
    write_text(tmp_path / name, "x")
    assert [p.name for p in tmp_path.iterdir()] == [name]


# --- the commands --------------------------------------------------------------------------


def test_report_and_export_onto_dev_full_and_dev_null(one_run: int) -> None:
    for command in ("report", "export"):
        _one_line_error(runner.invoke(app, [command, "-o", "/dev/full"]), "/dev/full")
        assert _char_device("/dev/full")
        ok = runner.invoke(app, [command, "-o", "/dev/null"])
        assert ok.exit_code == 0 and "to /dev/null" in ok.stderr
        assert _char_device("/dev/null")


def test_report_onto_a_fifo_nobody_reads_is_one_line_not_a_hang(one_run: int, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    line = _one_line_error(runner.invoke(app, ["report", "-o", str(fifo)]), str(fifo))
    assert "no process reads it" in line and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_folder_or_a_missing_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    _one_line_error(runner.invoke(app, ["export", "-o", str(tmp_path)]), str(tmp_path))
    missing = tmp_path / "no" / "r.md"
    _one_line_error(runner.invoke(app, ["report", "-o", str(missing)]), str(missing))
    blocker = tmp_path / "figures"
    blocker.write_text("a file where the folder should be\n")
    line = _one_line_error(runner.invoke(app, ["report", "--figures", str(blocker)]), str(blocker))
    assert "not a folder" in line and blocker.read_text().startswith("a file")
    assert not Path(os.environ["FNN_TUI_HOME"]).exists()  # refused before the store was opened


def test_figures_under_a_file_name_one_line_naming_what_was_named(one_run: int, tmp_path: Path) -> None:
    blocker = tmp_path / "figures"
    blocker.write_text("x")
    _one_line_error(runner.invoke(app, ["report", "--figures", str(blocker / "sub")]), str(blocker / "sub"))
    _one_line_error(runner.invoke(app, ["plot", "exp07", "-o", str(blocker / "f.png")]), str(blocker))


def _read_only_mount_works(folder: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o ro tmpfs '{folder}' && ! touch '{folder}/x'"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def test_a_read_only_folder_is_one_line_naming_the_target_not_the_temp_file(one_run: int, tmp_path: Path) -> None:
    """A real read-only file system (a read-only tmpfs in a user and mount namespace of its
    own), so the test means the same as root, where a chmod stops nothing."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _read_only_mount_works(ro):
        pytest.skip("no `unshare -rm` with a read-only tmpfs mount here (user namespaces unavailable)")
    commands = [["report", "--figures", str(ro)], ["report", "--figures", f"{ro}/figs"],
                ["report", "-o", f"{ro}/report.md"], ["export", "-o", f"{ro}/t.csv"],
                ["plot", "exp07", "-o", f"{ro}/p.png"]]
    code = ("import sys; from typer.testing import CliRunner; from fnn_tui.cli import app\n"
            f"for args in {commands!r}:\n"
            "    r = CliRunner().invoke(app, args)\n"
            "    print(r.stderr.strip(), file=sys.stderr); print(f'rc={r.exit_code}', file=sys.stderr)\n")
    script = f"mount -t tmpfs -o ro tmpfs '{ro}' || exit 99; exec {sys.executable} -c \"$0\""  # one interpreter
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: cannot write {ro}/fnn-exp07.png: Read-only file system", "rc=2",
        f"error: cannot write {ro}/figs: Read-only file system", "rc=2",
        f"error: cannot write {ro}/report.md: Read-only file system", "rc=2",
        f"error: cannot write {ro}/t.csv: Read-only file system", "rc=2",
        f"error: cannot write {ro}/p.png: Read-only file system", "rc=2",
    ], done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a folder without write permission")
def test_a_folder_without_write_permission_is_one_line(one_run: int, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = _one_line_error(runner.invoke(app, ["report", "--figures", str(locked)]), f"{locked}/fnn-exp07.png")
    finally:
        locked.chmod(0o700)
    assert "Permission denied" in line
