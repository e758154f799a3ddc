"""The article's set-up as idempotent steps: each checks first and acts only when needed.

A `Step` is pure data (host, a check command, an action, what it may destroy); `plan_text`
renders the plan `--lab-plan` prints; `apply` runs steps through runners, refusing any
destructive action on a device that carries a filesystem, partition table or LVM signature
unless the user named that device (`--lab-allow-wipe DEVICE`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.hypervisor.domconfig import parse_domain_config, render_domain_config, render_libvirt_xml
from xenlab.inventory.model import Inventory
from xenlab.progress import Progress


class ProvisionRefused(LabError):
    """A destructive step met a device that holds data, and the user did not name it."""


@dataclass(frozen=True)
class Step:
    host: str
    name: str
    check: str  # shell; exit status 0 means the step is already satisfied
    act: str  # shell; runs only when the check fails
    wipes: str | None = None  # the device the action overwrites, if any
    input: str | None = None  # the action's standard input (a file's content)
    secret: bool = False  # the input is a secret: never printed in plans or logs


@dataclass(frozen=True)
class Outcome:
    step: Step
    done: str  # "satisfied" (nothing to do) or "applied"


def plan_text(steps: Sequence[Step]) -> str:
    """Every command the run would execute, per host, in order; nothing is touched."""
    out: list[str] = []
    for host in dict.fromkeys(s.host for s in steps):
        out.append(f"== {host}")
        for number, step in enumerate((s for s in steps if s.host == host), start=1):
            out.append(f"  {number:2d}. {step.name}")
            out.append(f"      check: {step.check}")
            act = step.act
            if step.input is not None:
                shown = "<secret>" if step.secret else f"{len(step.input)} bytes"
                act += f"   # standard input: {shown}"
            out.append(f"      act:   {act}")
            if step.wipes:
                out.append(f"      overwrites {step.wipes} (refused if it holds data and is "
                           f"not named with --lab-allow-wipe)")
    return "\n".join(out) + "\n"


SIGNATURE_PROBE = "blkid -p -o export {dev} 2>/dev/null; true"


def parse_signatures(text: str) -> list[str]:
    """`blkid -p -o export` lines -> what was found ('ext4 signature', 'dos partition
    table', 'LVM2_member signature'); empty when the device carries nothing blkid knows."""
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    found = []
    if "TYPE" in fields:
        found.append(f"{fields['TYPE']} signature")
    if "PTTYPE" in fields:
        found.append(f"{fields['PTTYPE']} partition table")
    return found


def wipe_refusal(runner: Runner, host: str, device: str,
                 allowed: Sequence[str]) -> str | None:
    """Why overwriting `device` on `host` is refused, or None."""
    if device in allowed:
        return None
    out = runner.run(["sh", "-c", SIGNATURE_PROBE.format(dev=shlex.quote(device))],
                     check=False).stdout
    found = parse_signatures(out)
    if not found:
        return None
    return (f"on {host}: {device} carries {', '.join(found)}; xenlab overwrites it only when "
            f"you name it: --lab-allow-wipe {device}")


def apply(steps: Sequence[Step], runners: Mapping[str, Runner] | Callable[[str], Runner],
          progress: Progress, allow_wipe: Sequence[str] = ()) -> list[Outcome]:
    """Run each step's check, and its action only where the check fails."""
    get = runners if callable(runners) else runners.__getitem__
    outcomes = []
    for step in steps:
        runner = get(step.host)
        with progress.step(f"{step.host}: {step.name}"):
            if runner.run(["sh", "-c", step.check], check=False).rc == 0:
                outcomes.append(Outcome(step, "satisfied"))
                continue
            if step.wipes:
                refusal = wipe_refusal(runner, step.host, step.wipes, allow_wipe)
                if refusal:
                    raise ProvisionRefused(refusal)
            result = runner.run(["sh", "-c", step.act], input=step.input, check=False,
                                timeout=600)
            if result.rc != 0:
                raise LabError(f"on {step.host}: {step.name} failed (exit {result.rc}): "
                               f"{(result.stderr or result.stdout).strip()[-600:]}")
            if runner.run(["sh", "-c", step.check], check=False).rc != 0:
                raise LabError(f"on {step.host}: {step.name} ran but its check still fails: "
                               f"{step.check}")
            outcomes.append(Outcome(step, "applied"))
    return outcomes


def _q(text: str) -> str:
    return shlex.quote(text)


def storage_steps(inventory: Inventory, etherd: str) -> list[Step]:
    """On every resource host: the aoe driver, discovery, the device; on the first one the
    PV, VG and each guest's LV; on the others each LV active (device-mapper)."""
    lvm = inventory.lvm
    steps = []
    for spec in inventory.resources:
        steps += _aoe_steps(spec.name, etherd)
    first, *others = [h.name for h in inventory.resources]
    steps.append(Step(first, f"PV on {etherd}", f"pvs {_q(etherd)} >/dev/null 2>&1",
                      f"pvcreate -q {_q(etherd)}", wipes=etherd))
    steps.append(Step(first, f"VG {lvm.vg}", f"vgs {_q(lvm.vg)} >/dev/null 2>&1",
                      f"vgcreate -q {_q(lvm.vg)} {_q(etherd)}"))
    for guest in inventory.guests:  # each guest its own LV, the first lvm.lv
        steps.append(Step(first, f"LV {guest.lv} ({lvm.size} bytes)",
                          f"lvs {_q(lvm.vg + '/' + guest.lv)} >/dev/null 2>&1",
                          f"lvcreate -q -y -Wy -L {lvm.size}b -n {_q(guest.lv)} {_q(lvm.vg)}"))
    for name in others:
        steps += _activation_steps(inventory, name)
    return steps


def _aoe_steps(host: str, etherd: str) -> list[Step]:
    return [Step(host, "aoe driver loaded", "grep -q '^aoe ' /proc/modules", "modprobe aoe"),
            Step(host, f"{etherd} discovered", f"[ -b {_q(etherd)} ]",
                 f"aoe-discover; i=0; until [ -b {_q(etherd)} ] || [ $i -ge 100 ]; "
                 f"do sleep 0.1; aoe-discover; i=$((i+1)); done")]


def _activation_steps(inventory: Inventory, host: str) -> list[Step]:
    vg = inventory.lvm.vg
    return [Step(host, f"/dev/{vg}/{guest.lv} active", f"[ -b {_q(f'/dev/{vg}/{guest.lv}')} ]",
                 f"vgscan -q --mknodes && vgchange -q -a y {_q(vg)}")
            for guest in inventory.guests]


def restore_steps(inventory: Inventory, etherd: str, host: str, toolstack: str) -> list[Step]:
    """What a resource host needs again after its power came back, as a server's own boot
    brings it: the aoe driver, the export seen, every guest's LV active, the domain configs.
    Nothing that creates or writes storage: the guests run on it meanwhile."""
    return [*_aoe_steps(host, etherd), *_activation_steps(inventory, host),
            *(s for s in config_steps(inventory, toolstack) if s.host == host)]


def tree_digest(root: Path) -> str:
    """A digest of a directory tree's names, modes, link targets and contents (not times)."""
    import hashlib
    import os

    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        h.update(f"{rel}\0{st.st_mode:o}\0".encode())
        if path.is_symlink():
            h.update(os.readlink(path).encode())
        elif path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


IMAGE_MARK = "/etc/xenlab-image"  # written last into the guest root: the image is complete


def image_steps(inventory: Inventory, images: Mapping[str, tuple[str, str]]) -> list[Step]:
    """On the first resource host, for each guest: its filesystem on its LV and its image
    unpacked (the article's xenimage.tgz, fixed up), the LV unmounted afterwards. `images`:
    each guest's tarball (base64) and digest, by guest name."""
    fs = inventory.filesystem
    first = inventory.resources[0].name
    steps = []
    for guest in inventory.guests:
        tarball_b64, digest = images[guest.name]
        lv = f"/dev/{inventory.lvm.vg}/{guest.lv}"
        fstab = f"{guest.domain.root} / {fs} defaults 1 1"
        mnt = f"/mnt/xenlab-{guest.name}"
        mounted_check = (f"d=$(mktemp -d) && mount -o ro {_q(lv)} $d 2>/dev/null && "
                         f"grep -qx {_q(digest)} $d{IMAGE_MARK}; r=$?; umount $d 2>/dev/null; "
                         f"rmdir $d; exit $r")
        steps += [
            Step(first, f"{fs} filesystem on {lv}", f"blkid -p -o value -s TYPE {_q(lv)} | "
                 f"grep -qx {_q(fs)}",
                 f"mkfs.{fs} -q -E lazy_itable_init=1,lazy_journal_init=1 {_q(lv)}", wipes=lv),
            Step(first, f"guest image ({digest}) unpacked onto {lv}, unmounted", mounted_check,
                 f"mkdir -p {_q(mnt)} && mount {_q(lv)} {_q(mnt)} && base64 -d | "
                 f"tar -xzf - -C {_q(mnt)} && "
                 # the article's fix-ups: fstab's root line, the gettys of runlevels 2-6 off
                 f"echo {_q(fstab)} > {_q(mnt)}/etc/fstab && "
                 f"sed -i -e 's/^[2-6]:/#&/' {_q(mnt)}/etc/inittab && "
                 f"echo {_q(digest)} > {_q(mnt)}{IMAGE_MARK} && sync && umount {_q(mnt)}",
                 input=tarball_b64),
        ]
    return steps


def libvirt_xml_path(config_path: str) -> str:
    """Where the libvirt toolstack's domain XML goes: beside the xl config (vm1.cfg -> vm1.xml)."""
    stem = config_path[:-4] if config_path.endswith(".cfg") else config_path
    return f"{stem}.xml"


def config_steps(inventory: Inventory, toolstack: str) -> list[Step]:
    """Each guest's domain config, identical on every resource host (libvirt: the xl config,
    the article's record, and the domain XML rendered from it, which `virsh create` reads)."""
    files = []
    for guest in inventory.guests:
        path = guest.domain.config_path
        text = render_domain_config(guest.domain, toolstack=toolstack)
        files.append((path, text))
        if inventory.toolstack == "libvirt":
            xml = render_libvirt_xml(parse_domain_config(text, path))
            files.append((libvirt_xml_path(path), xml))
    return [_file_step(spec.name, f"domain config {path}", path, content)
            for spec in inventory.resources for path, content in files]


def _file_step(host: str, what: str, path: str, text: str) -> Step:
    """A file with exactly this content (checked by sha256)."""
    import hashlib

    digest = hashlib.sha256(text.encode()).hexdigest()
    return Step(host, what,
                f"[ \"$(sha256sum {_q(path)} 2>/dev/null | cut -d' ' -f1)\" = {digest} ]",
                f"mkdir -p {_q(path.rsplit('/', 1)[0] or '/')} && cat > {_q(path)}",
                input=text)


def export_steps(inventory: Inventory) -> list[Step]:
    """On the storage host: the exported device is there, and vblade exports it on the
    configured interface as a systemd service that outlives the run."""
    aoe = inventory.aoe
    device = aoe.device or "<export>"
    unit = f"xenlab-vblade-{aoe.target}.service"
    text = (f"[Unit]\nDescription=AoE export {aoe.target} of {device} (xenlab)\n"
            "After=network-online.target\n[Service]\n"
            f"ExecStart=/usr/sbin/vblade {aoe.shelf} {aoe.slot} {aoe.interface} {device}\n"
            "Restart=on-failure\n[Install]\nWantedBy=multi-user.target\n")
    import hashlib

    digest = hashlib.sha256(text.encode()).hexdigest()
    host = inventory.storage.name
    path = f"/etc/systemd/system/{unit}"
    return [
        Step(host, f"{device} exists (a partition or file of its own)",
             f"[ -b {_q(device)} ] || [ -f {_q(device)} ]",
             f"echo 'xenlab: {device} is missing; create the partition first' >&2; exit 1"),
        Step(host, f"vblade service {unit}",
             f"[ \"$(sha256sum {_q(path)} 2>/dev/null | cut -d' ' -f1)\" = {digest} ] && "
             f"systemctl is-active -q {unit}",
             f"cat > {_q(path)} && systemctl daemon-reload && systemctl enable --now {unit} "
             f"&& systemctl restart {unit}", input=text),
    ]


XEND_CONFIG = "/etc/xen/xend-config.sxp"


def relocation_steps(inventory: Inventory) -> list[Step]:
    """xm only: xend's relocation server on the configured port, open to the resource hosts
    alone; xend restarted only when its config changed. (xl migrates over ssh: nothing.)"""
    if inventory.toolstack != "xm":
        return []
    port = inventory.relocation_port
    allow = " ".join(f"^{h.name}$" for h in inventory.resources)
    lines = ["(xend-relocation-server yes)", f"(xend-relocation-port {port})",
             "(xend-relocation-address '')", f"(xend-relocation-hosts-allow '{allow}')"]
    check = " && ".join(f"grep -qxF {_q(line)} {XEND_CONFIG}" for line in lines)
    keys = "|".join(("xend-relocation-server", "xend-relocation-port",
                     "xend-relocation-address", "xend-relocation-hosts-allow"))
    act = (f"cp -p {XEND_CONFIG} {XEND_CONFIG}.xenlab-backup && "
           f"sed -i -E '/^\\((({keys})) /d' {XEND_CONFIG} && "
           + " && ".join(f"echo {_q(line)} >> {XEND_CONFIG}" for line in lines)
           + " && (rcxend restart || /etc/init.d/xend restart)")
    return [Step(h.name, f"xend relocation on port {port}, resource hosts only", check, act)
            for h in inventory.resources]


def article_plan(inventory: Inventory, image_b64: str = "<xenimage.tgz, base64>",
                 digest: str = "<image digest>") -> list[Step]:
    """The whole set-up of the article's lab for `inventory`: what `--lab-plan` prints and
    `--lab-provision` runs on a real lab."""
    etherd = f"/dev/etherd/{inventory.aoe.target}"
    toolstack = "xm" if inventory.toolstack == "xm" else "xl"  # libvirt: xl's syntax
    steps = export_steps(inventory) if inventory.kind.value == "real" else []
    images = {g.name: (image_b64, digest) for g in inventory.guests}  # one image for all
    return [*steps, *storage_steps(inventory, etherd), *image_steps(inventory, images),
            *config_steps(inventory, toolstack), *relocation_steps(inventory)]
