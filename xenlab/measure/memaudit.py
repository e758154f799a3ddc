"""The hypervisor's side of guest memory integrity: the source's final memory against what
the destination received, page by page, before the destination resumes the guest."""

from __future__ import annotations

from dataclasses import dataclass

PAGE = 4096


@dataclass(frozen=True)
class MemoryAudit:
    pages: int
    differing: tuple[int, ...]  # page numbers (guest-physical address // 4096)

    @property
    def intact(self) -> bool:
        return not self.differing

    def as_dict(self) -> dict[str, object]:
        return {"pages": self.pages, "differing_count": len(self.differing),
                "differing_first": [hex(p * PAGE) for p in self.differing[:16]]}


def differing_pages(source: bytes, destination: bytes, page: int = PAGE) -> MemoryAudit:
    """Pages that differ between two dumps of guest-physical memory (pure)."""
    if len(source) != len(destination):
        raise ValueError(f"dumps differ in size: {len(source)} and {len(destination)} bytes")
    a, b = memoryview(source), memoryview(destination)
    differing = tuple(i // page for i in range(0, len(a), page) if a[i:i + page] != b[i:i + page])
    return MemoryAudit(len(a) // page, differing)
