"""Data the guest writes and must read back, unchanged, from its disk (the page cache
dropped first): the fault suite's witness, and the maintenance suite's proof that a guest's
disk is on the shared storage, not on the host it left."""

from __future__ import annotations

import concurrent.futures
import shlex
import time

from testinfra.host import Host

from xenlab.errors import XenlabError

WITNESS_BYTES = 256 * 1024
ANSWER_S = 120.0  # the longest one guest command may take (a sync of 256 KiB, a dmesg)
IO_ERROR_PATTERN = "I/O error|EXT4-fs error|EXT4-fs warning|blk_update_request|Buffer I/O"
# the guest writes chunks with fsync for ~12 s while the storage target is away; each
# chunk's digest (from the page cache, i.e. what was written) goes to a list
WRITER = """
cd /root && rm -f xenlab-io.* xenlab-io.log xenlab-io.done
i=0
while [ $i -lt 24 ]; do
  dd if=/dev/urandom of=xenlab-io.$i bs=64k count=2 conv=fsync 2>>xenlab-io.err ||
    echo "dd $i failed: exit $?" >>xenlab-io.log
  i=$((i+1)); sleep 0.5
done
sha256sum xenlab-io.[0-9]* >xenlab-io.sums; echo done >xenlab-io.done
"""


class GuestData:
    """Data the guest writes before a fault and must read back, unchanged, from disk after."""

    def __init__(self, guest: Host, answer_s: float = ANSWER_S) -> None:
        self.guest = guest
        self.answer_s = answer_s

    def _sh(self, script: str) -> str:
        """One shell command in the guest; a guest stuck in I/O (its disk gone) is an error
        after `answer_s`, never a hung run (the stuck session is left to the teardown)."""
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            out = pool.submit(self.guest.run, "sh -c %s", script).result(self.answer_s)
        except concurrent.futures.TimeoutError:
            raise XenlabError(f"in the guest: `{script[:60]}` gave no answer within "
                              f"{self.answer_s:g} s (stuck in I/O?)") from None
        finally:
            pool.shutdown(wait=False)
        if out.rc != 0:
            raise XenlabError(f"in the guest: `{script[:60]}` failed (exit {out.rc}): "
                              f"{(out.stderr or out.stdout).strip()[-300:]}")
        return out.stdout

    def write(self, name: str) -> str:
        path = f"/root/xenlab-witness-{name}"
        return self._sh(f"head -c {WITNESS_BYTES} /dev/urandom >{path} && sync && "
                        f"sha256sum {path}").split()[0]

    def read_back(self, name: str) -> str | None:
        """The file's digest as the disk has it (the page cache dropped first)."""
        try:
            return self._sh("sync; echo 3 >/proc/sys/vm/drop_caches; "
                            f"sha256sum /root/xenlab-witness-{name}").split()[0]
        except (XenlabError, RuntimeError):  # RuntimeError: testinfra's ssh failed
            return None

    def corrupt(self, name: str) -> None:
        """Self-test only: what a run that lost the data would find."""
        self._sh(f"head -c {WITNESS_BYTES} /dev/zero >/root/xenlab-witness-{name}; sync")

    def log_lines(self) -> int:
        return len(self._sh("dmesg").splitlines())

    def io_errors(self, since: int) -> tuple[str, ...]:
        lines = self._sh("dmesg").splitlines()[since:]
        return tuple(line for line in lines if any(
            word.lower() in line.lower() for word in IO_ERROR_PATTERN.split("|")))

    def start_writer(self) -> None:
        # the guest's busybox has no nohup: the subshell ignores SIGHUP itself
        self._sh(f"(trap '' HUP; sh -c {shlex.quote(WRITER)}) </dev/null >/dev/null 2>&1 &")
        deadline = time.monotonic() + 30
        while self.guest.run("test -e /root/xenlab-io.0").rc != 0:  # it has begun writing
            if time.monotonic() > deadline:
                raise XenlabError("the guest's writer did not start within 30 s")
            time.sleep(0.5)

    def writer_result(self, timeout: float = 240.0) -> tuple[str, str | None, list[str]]:
        """(digests as written, digests read from disk, failures) once the writer ends."""
        deadline = time.monotonic() + timeout
        while self.guest.run("test -e /root/xenlab-io.done").rc != 0:
            if time.monotonic() > deadline:
                return "", None, [f"the guest's writer did not finish within {timeout:.0f} s"]
            time.sleep(1)
        written = self._sh("cat /root/xenlab-io.sums")
        failures = self._sh("cat /root/xenlab-io.log 2>/dev/null || true").splitlines()
        try:
            read = self._sh("sync; echo 3 >/proc/sys/vm/drop_caches; cd /root && "
                            "sha256sum xenlab-io.[0-9]*")
        except XenlabError:
            read = None
        return written, read, failures
