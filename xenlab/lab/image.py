"""The guest's root filesystem, prepared the way the article prepares xenimage.tgz.

Pure text functions (the article's three fix-ups) are kept apart from `stage_root`, which lays
the files out in a directory that `mke2fs -d` then writes into the LV's byte range.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# What YaST's dirinstall leaves in /etc/inittab on SUSE 10.1 (abridged to the lines that matter).
DIRINSTALL_INITTAB = """\
# /etc/inittab
id:3:initdefault:
si::bootwait:/etc/init.d/boot
l0:0:wait:/etc/init.d/rc 0
l1:1:wait:/etc/init.d/rc 1
l2:2:wait:/etc/init.d/rc 2
l3:3:wait:/etc/init.d/rc 3
l5:5:wait:/etc/init.d/rc 5
l6:6:wait:/etc/init.d/rc 6
ls:S:wait:/etc/init.d/rc S
~~:S:respawn:/sbin/sulogin
ca::ctrlaltdel:/sbin/shutdown -r -t 4 now
1:2345:respawn:/sbin/mingetty --noclear tty1
2:2345:respawn:/sbin/mingetty tty2
3:2345:respawn:/sbin/mingetty tty3
4:2345:respawn:/sbin/mingetty tty4
5:2345:respawn:/sbin/mingetty tty5
6:2345:respawn:/sbin/mingetty tty6
"""

GUEST_INIT = """#!/bin/sh
# xenlab guest boot script. It stands in for the distribution's rc scripts: busybox cannot
# run the SysV inittab the article edits, which is kept on the image as the article leaves it.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -o remount,rw /
mkdir -p /dev/pts /run /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
hostname -F /etc/hostname
ip link set lo up
addr=""
for arg in $(cat /proc/cmdline); do
  case $arg in xenlab.ip=*) addr=${arg#xenlab.ip=} ;; esac
done
ip link set eth0 up
[ -n "$addr" ] && ip addr add "$addr" dev eth0
for script in /etc/xenlab/rc.d/*; do [ -x "$script" ] && "$script"; done
echo "xenlab-guest-ready boot_id=$(cat /proc/sys/kernel/random/boot_id)" > /dev/console
while :; do sleep 3600; done
"""


def article_fstab(root_device: str, filesystem: str) -> str:
    """echo "/dev/hda1 / reiserfs defaults 1 1" > /mnt/etc/fstab"""
    return f"{root_device} / {filesystem} defaults 1 1\n"


def comment_runlevels(inittab: str) -> str:
    """sed -e "s/^[2-6]:/#\\0/": comment out the gettys of lines 2 to 6."""
    return re.sub(r"^([2-6]:)", r"#\1", inittab, flags=re.MULTILINE)


def guest_passwd() -> tuple[str, str]:
    """passwd and shadow for the guest.

    The article copies dom0's own /etc/passwd and /etc/shadow into the guest; the embedded lab
    never copies this machine's password hashes into an image: root has no password ('*'),
    and logs in with the lab's own SSH key only.
    """
    passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    shadow = "root:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n"
    return passwd, shadow


SSHD_SCRIPT = """#!/bin/sh
# the guest's SSH server: key logins only, with the lab's own host key
exec /usr/sbin/dropbear -s -r /etc/dropbear/dropbear_ed25519_host_key -p 22
"""


ECHO_PORT = 7000
ECHO_SCRIPT = f"""#!/bin/sh
# a TCP echo service: the harness holds a connection to it open across migrations
nc -ll -p {ECHO_PORT} -e /bin/cat </dev/null >/dev/null 2>&1 &
"""


def parse_ldd(text: str) -> list[str]:
    """The library paths in `ldd BINARY` output (the loader included, vdso left out)."""
    paths = []
    for line in text.splitlines():
        line = line.strip()
        target = line.split("=>", 1)[1] if "=>" in line else line
        path = target.strip().split(" (", 1)[0].strip()
        if path.startswith("/"):
            paths.append(path)
    return paths


@dataclass(frozen=True)
class GuestSsh:
    """What the guest needs to accept the lab's SSH key: dropbear, its libraries, the keys."""

    server: str  # /usr/sbin/dropbear on this machine
    libraries: tuple[str, ...]
    host_key: Path  # dropbear-format private host key
    authorized_key: str  # the lab's public client key


def install_ssh(root: Path, ssh: GuestSsh) -> None:
    for source in (ssh.server, *ssh.libraries):
        target = root / source.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(source), target)
    keydir = root / "etc/dropbear"
    keydir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ssh.host_key, keydir / "dropbear_ed25519_host_key")
    os.chmod(keydir / "dropbear_ed25519_host_key", 0o600)
    dot_ssh = root / "root/.ssh"
    dot_ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(dot_ssh, 0o700)
    (dot_ssh / "authorized_keys").write_text(ssh.authorized_key.strip() + "\n")
    os.chmod(dot_ssh / "authorized_keys", 0o600)
    script = root / "etc/xenlab/rc.d/50-sshd"
    script.write_text(SSHD_SCRIPT)
    os.chmod(script, 0o755)


def stage_root(root: Path, *, hostname: str, root_device: str, filesystem: str,
               busybox: str = "/bin/busybox", ssh: GuestSsh | None = None,
               hosts: str = "", fstab_filesystem: str | None = None,
               edit_inittab: bool = True, inittab_backup: bool = False,
               memcheck: Path | None = None) -> None:
    """Lay out the guest root in `root`: the 'dirinstall image', then the article's fix-ups."""
    for d in ("bin", "sbin", "etc/xenlab/rc.d", "dev", "proc", "sys", "tmp", "run", "root", "mnt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    data = Path(busybox).read_bytes()
    (root / "bin/busybox").write_bytes(data)
    os.chmod(root / "bin/busybox", 0o755)
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = root / applet
        if applet == "bin/busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/bin/busybox", link)
    init = root / "sbin/init"
    if init.is_symlink() or init.exists():
        init.unlink()
    init.write_text(GUEST_INIT)
    os.chmod(init, 0o755)
    (root / "etc/hostname").write_text(hostname + "\n")
    # the image as dirinstall leaves it ...
    (root / "etc/inittab").write_text(DIRINSTALL_INITTAB)
    (root / "etc/fstab").write_text("")
    # ... and the article's three fix-ups
    passwd, shadow = guest_passwd()
    (root / "etc/passwd").write_text(passwd)
    (root / "etc/shadow").write_text(shadow)
    os.chmod(root / "etc/shadow", 0o600)
    (root / "etc/fstab").write_text(article_fstab(root_device, fstab_filesystem or filesystem))
    if edit_inittab:
        (root / "etc/inittab").write_text(comment_runlevels(DIRINSTALL_INITTAB))
    if inittab_backup:  # what `sed -ie` really does: -i with backup suffix "e"
        (root / "etc/inittabe").write_text(DIRINSTALL_INITTAB)
    if hosts:
        (root / "etc/hosts").write_text(hosts)
    if memcheck is not None:
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(memcheck, root / "usr/bin/xenlab-memcheck")
        os.chmod(root / "usr/bin/xenlab-memcheck", 0o755)
    echo = root / "etc/xenlab/rc.d/60-echo"
    echo.write_text(ECHO_SCRIPT)
    os.chmod(echo, 0o755)
    if ssh is not None:
        install_ssh(root, ssh)
