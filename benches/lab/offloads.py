#!/usr/bin/env python3
"""offloads.py DEV on|off [tso] [gso] [gro]: set an interface's TSO, GSO and GRO (or those named) (there is no ethtool binary on the
bench machines). Uses the legacy ETHTOOL_S* ioctls, which every kernel still takes. Run it in the
interface's namespace (ip netns exec NS python3 offloads.py DEV off)."""
import ctypes, fcntl, socket, struct, sys

SIOCETHTOOL = 0x8946
# ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO (include/uapi/linux/ethtool.h)
COMMANDS = {"tso": 0x1F, "gso": 0x24, "gro": 0x2C}

def main():
    if len(sys.argv) < 3 or sys.argv[2] not in ("on", "off") or not set(sys.argv[3:]) <= set(COMMANDS):
        sys.exit("usage: offloads.py DEV on|off [tso] [gso] [gro]  (all three when none is named)")
    dev, on = sys.argv[1], sys.argv[2] == "on"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for name, cmd in COMMANDS.items():
        if sys.argv[3:] and name not in sys.argv[3:]:
            continue
        value = ctypes.create_string_buffer(struct.pack("II", cmd, int(on)))
        ifreq = struct.pack("16sP", dev.encode(), ctypes.addressof(value))
        try:
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
        except OSError as e:
            sys.exit(f"offloads.py: {dev}: setting {name} {sys.argv[2]}: {e}")

main()
