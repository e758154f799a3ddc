"""The build steps both embedded labs share, one module each: the switch (network.py), the
exported image and its vblade (vblade.py), the SSH kit (sshkit.py), the migration cut
(cut.py). The guest image itself is xenlab/lab/image.py."""
