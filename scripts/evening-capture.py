#!/usr/bin/env python3
"""Write captures/evening.pcap: eight seconds of a household's evening on a 20 Mbit/s uplink, the
capture the README's quick start replays through configs/home.ron.

    python3 scripts/evening-capture.py captures/evening.pcap

Made here, deterministic (no randomness), every address in private or benchmark ranges:

- a call: SIP on UDP 5060, then RTP (G.711, 20 ms packets) both ways between the laptop
  192.168.1.10 and 198.18.10.5, for the whole eight seconds;
- a game: the console 192.168.1.20 and 198.18.20.7 on UDP 3074 (Xbox Live), 60 packets a
  second up, 30 down;
- browsing: three HTTPS page loads by the laptop (TCP 443, a TLS ClientHello naming the site,
  then about 400 kB down), at 1, 3 and 5 s;
- a backup: the NAS 192.168.1.30 uploading over TCP (rsync, port 873) to 198.18.40.9 at
  24 Mbit/s offered from 2 s to 8 s, more than the uplink carries: this is what the policy must
  hold back so that the call and the game are not hurt.

The large TCP data segments (1514 bytes on the wire) are kept as their first 54 bytes, their
headers (the record keeps their length on the wire, which weir charges), so the file stays
about 1.4 MB; every other frame is whole. IPv4 header checksums are right; TCP and
UDP checksums are left at zero (weir does not read them).
"""
import struct
import sys

SNAP = 54  # Ethernet, IPv4 and TCP headers: what weir reads of a data segment.
T0 = 1_796_151_600  # 2026-12-01 19:00:00 UTC: an evening.
MAC = {
    "laptop": b"\x02\x00\x00\x00\x01\x10",
    "console": b"\x02\x00\x00\x00\x01\x20",
    "nas": b"\x02\x00\x00\x00\x01\x30",
    "router": b"\x02\x00\x00\x00\x01\x01",
}


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0, dscp=0):
    head = struct.pack(">BBHHHBBH4s4s", 0x45, dscp << 2, 20 + len(payload), ident & 0xFFFF,
                       0x4000, 64, proto, 0, ip4(src), ip4(dst))
    head = head[:10] + struct.pack(">H", checksum(head)) + head[12:]
    return head + payload


def udp(sport, dport, payload):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport, dport, seq, ack, flags, payload=b""):
    return struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                       5 << 4, flags, 65535, 0, 0) + payload


def ether(src_mac, dst_mac, packet):
    return dst_mac + src_mac + b"\x08\x00" + packet


def client_hello(name):
    n = name.encode()
    sni = struct.pack(">HHHBH", 0, len(n) + 5, len(n) + 3, 0, len(n)) + n
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + struct.pack(">H", len(sni)) + sni)
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


frames = []  # (time in microseconds, frame)


def add(t_us, frame):
    frames.append((int(t_us), frame))


def up(t, who, packet):
    add(t, ether(MAC[who], MAC["router"], packet))


def down(t, who, packet):
    add(t, ether(MAC["router"], MAC[who], packet))


# The call: SIP, then RTP both ways every 20 ms (EF-marked upstream by the phone app).
up(0, "laptop", ipv4("192.168.1.10", "198.18.10.5", 17, udp(5060, 5060,
   b"INVITE sip:friend@example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.10\r\n\r\n")))
down(15_000, "laptop", ipv4("198.18.10.5", "192.168.1.10", 17, udp(5060, 5060,
     b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.168.1.10\r\n\r\n")))
for i in range(400):
    t = 40_000 + i * 20_000
    rtp = struct.pack(">BBHII", 0x80, 0, i, i * 160, 0x11223344) + bytes(160)
    rtp_back = struct.pack(">BBHII", 0x80, 0, i, i * 160, 0x55667788) + bytes(160)
    up(t, "laptop", ipv4("192.168.1.10", "198.18.10.5", 17, udp(16400, 20000, rtp), i, 46))
    down(t + 7_000, "laptop", ipv4("198.18.10.5", "192.168.1.10", 17, udp(20000, 16400, rtp_back), i))

# The game: 60 packets a second up, 30 down.
for i in range(480):
    up(3_000 + i * 16_667, "console", ipv4("192.168.1.20", "198.18.20.7", 17,
       udp(3074, 3074, bytes([i & 255]) * 72), i))
for i in range(240):
    down(9_000 + i * 33_333, "console", ipv4("198.18.20.7", "192.168.1.20", 17,
         udp(3074, 3074, bytes([i & 255]) * 180), i))

# Browsing: three page loads, each a TLS handshake then ~400 kB down in 1448-byte segments
# (about 0.6 s at 5.5 Mbit/s), ACKed every second segment.
sites = ["www.example.org", "news.example.com", "video.example.net"]
for k, site in enumerate(sites):
    t = 1_000_000 + k * 2_000_000
    server = f"198.18.30.{k + 1}"
    sport = 50_000 + k
    up(t, "laptop", ipv4("192.168.1.10", server, 6, tcp(sport, 443, 1000, 0, 0x02)))
    down(t + 20_000, "laptop", ipv4(server, "192.168.1.10", 6, tcp(443, sport, 5000, 1001, 0x12)))
    up(t + 20_100, "laptop", ipv4("192.168.1.10", server, 6, tcp(sport, 443, 1001, 5001, 0x10)))
    hello = client_hello(site)
    up(t + 20_200, "laptop", ipv4("192.168.1.10", server, 6, tcp(sport, 443, 1001, 5001, 0x18, hello)))
    seq = 5001
    for j in range(280):
        tt = t + 45_000 + j * 2_100
        down(tt, "laptop", ipv4(server, "192.168.1.10", 6, tcp(443, sport, seq, 1001 + len(hello), 0x10, bytes(1448)), j))
        seq += 1448
        if j % 2:
            up(tt + 200, "laptop", ipv4("192.168.1.10", server, 6, tcp(sport, 443, 1001 + len(hello), seq, 0x10)))

# The backup: 24 Mbit/s of 1514-byte frames offered from 2 s to 8 s, ACKed every fourth.
sent = 1
gap = 1514 * 8 / 24e6 * 1e6
i = 0
t = 2_000_000
while t < 8_000_000:
    up(t, "nas", ipv4("192.168.1.30", "198.18.40.9", 6, tcp(40_873, 873, sent, 1, 0x10, bytes(1460)), i))
    sent += 1460
    if i % 4 == 3:
        down(t + 25_000, "nas", ipv4("198.18.40.9", "192.168.1.30", 6, tcp(873, 40_873, 1, sent, 0x10)))
    i += 1
    t += gap

frames.sort(key=lambda f: f[0])
out = open(sys.argv[1] if len(sys.argv) > 1 else "captures/evening.pcap", "wb")
out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
for t_us, f in frames:
    # Only the large data segments are cut; everything with a payload weir reads stays whole.
    cap = f[:SNAP] if len(f) > 1000 else f
    out.write(struct.pack("<IIII", T0 + t_us // 1_000_000, t_us % 1_000_000, len(cap), len(f)) + cap)
out.close()
print(f"{len(frames)} frames", file=sys.stderr)
