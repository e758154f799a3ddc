"""xenlab: certify a Xen live-migration lab (the 2006 AoE + LVM + xm lab) with pytest."""

__version__ = "0.1.0"
