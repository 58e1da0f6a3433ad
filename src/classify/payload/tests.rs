use super::*;
use proptest::prelude::*;

/// A TLS 1.3-style ClientHello record with `sni` (if any) after an unrelated extension.
pub(crate) fn client_hello(sni: Option<&[u8]>) -> Vec<u8> {
    let mut ext = Vec::new();
    // supported_versions, then server_name.
    ext.extend_from_slice(&[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
    if let Some(name) = sni {
        let entry_len = 3 + name.len();
        ext.extend_from_slice(&0u16.to_be_bytes());
        ext.extend_from_slice(&((entry_len + 2) as u16).to_be_bytes());
        ext.extend_from_slice(&(entry_len as u16).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
        ext.extend_from_slice(name);
    }
    let mut hello = vec![0x03, 0x03];
    hello.extend_from_slice(&[7; 32]);
    hello.push(32);
    hello.extend_from_slice(&[9; 32]);
    hello.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0x13, 0x02]);
    hello.extend_from_slice(&[0x01, 0x00]);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&hello);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

pub(crate) fn dns_query(name: &str, class: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&class.to_be_bytes());
    m
}

/// The host of the HTTP/1 request at the start of `payload`, when this one segment names it.
fn request_host(payload: &[u8]) -> Option<Name> {
    match http::request(payload) {
        http::Host::Found(n) => Some(n),
        _ => None,
    }
}

fn name(s: &str) -> Option<Name> {
    Name::from_host(s.as_bytes())
}

#[test]
fn the_sni_of_a_client_hello_is_read() {
    let rec = client_hello(Some(b"Zoom.US"));
    assert_eq!(tls::client_hello_sni(&rec), name("zoom.us"));
    assert_eq!(
        server_name(6, &rec, &mut Pending::default()),
        Some((NameSource::Sni, name("zoom.us").unwrap()))
    );
    assert_eq!(tls::client_hello_sni(&client_hello(None)), None);
}

#[test]
fn a_client_hello_cut_before_its_name_says_nothing() {
    let rec = client_hello(Some(b"www.example.com"));
    for cut in 0..rec.len() {
        let got = tls::client_hello_sni(&rec[..cut]);
        assert!(got.is_none(), "cut at {cut} of {}: {got:?}", rec.len());
    }
    assert!(tls::client_hello_sni(&rec).is_some());
}

#[test]
fn a_name_with_spaces_or_control_bytes_is_not_a_name() {
    assert_eq!(tls::client_hello_sni(&client_hello(Some(b"a b.com"))), None);
    assert_eq!(tls::client_hello_sni(&client_hello(Some(b"a\0.com"))), None);
    assert_eq!(tls::client_hello_sni(&client_hello(Some(b""))), None);
    assert_eq!(Name::from_host(&[b'a'; 254]), None);
    assert!(Name::from_host(&[b'a'; 253]).is_some());
    assert_eq!(
        Name::from_host(b"192.0.2.1"),
        None,
        "an address is not a name"
    );
    assert!(Name::from_host(b"1.2.3.4.in-addr.arpa").is_some());
}

#[test]
fn http_hosts_are_read_with_the_port_dropped() {
    let req = b"GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nhOsT:  Example.COM:8080 \r\n\r\n";
    assert_eq!(request_host(req), name("example.com"));
    assert_eq!(
        server_name(6, req, &mut Pending::default()),
        Some((NameSource::HttpHost, name("example.com").unwrap()))
    );
    // Any method; a request line without a target (clients send such things).
    let options = b"OPTIONS HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
    assert_eq!(request_host(options), name("www.example.com"));
    let connect = b"CONNECT proxy.example.net:443 HTTP/1.1\r\nHost: other\r\n\r\n";
    assert_eq!(request_host(connect), name("proxy.example.net"));
    // A CONNECT whose target is no name, and a method with an underscore.
    let connect = b"CONNECT / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
    assert_eq!(request_host(connect), name("www.example.com"));
    let ccm = b"CCM_POST / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
    assert_eq!(request_host(ccm), name("www.example.com"));
    // Not a request, no Host before the blank line, an IPv6 literal.
    assert_eq!(request_host(b"HTTP/1.1 200 OK\r\nHost: a\r\n\r\n"), None);
    assert_eq!(request_host(b"GET / HTTP/1.1\r\n\r\nHost: a\r\n"), None);
    assert_eq!(
        request_host(b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n"),
        None
    );
    assert_eq!(request_host(b"get / HTTP/1.1\r\nHost: a\r\n"), None);
    assert_eq!(request_host(b"GET /\r\nHost: a\r\n"), None);
}

#[test]
fn a_request_line_sent_alone_is_followed_by_its_headers() {
    let mut pending = Pending::default();
    assert_eq!(server_name(6, b"POST / HTTP/1.1\n", &mut pending), None);
    assert_eq!(pending, Pending::HttpHeaders);
    assert_eq!(
        server_name(6, b"Host: interleave.me\n", &mut pending),
        Some((NameSource::HttpHost, name("interleave.me").unwrap()))
    );
    assert_eq!(pending, Pending::Nothing);
    // Headers that end without a Host end the wait.
    let mut pending = Pending::default();
    assert_eq!(server_name(6, b"GET / HTTP/1.1\r\n", &mut pending), None);
    assert_eq!(server_name(6, b"Accept: */*\r\n\r\n", &mut pending), None);
    assert_eq!(pending, Pending::Nothing);
}

#[test]
fn dns_questions_are_read_over_udp_and_tcp() {
    let q = dns_query("Mail.Example.org", 1);
    assert_eq!(dns::question(&q), name("mail.example.org"));
    assert_eq!(
        server_name(17, &q, &mut Pending::default()),
        Some((NameSource::Dns, name("mail.example.org").unwrap()))
    );
    // mDNS asks with the unicast-response bit in the class.
    assert_eq!(
        dns::question(&dns_query("printer.local", 0x8001)),
        name("printer.local")
    );
    let mut tcp = (q.len() as u16).to_be_bytes().to_vec();
    tcp.extend_from_slice(&q);
    assert_eq!(dns::tcp_question(&tcp), name("mail.example.org"));
    assert_eq!(
        server_name(6, &tcp, &mut Pending::default()).map(|(s, _)| s),
        Some(NameSource::Dns)
    );
    // A class no DNS uses, two questions, a pointer in the question, cut short.
    assert_eq!(dns::question(&dns_query("a.org", 77)), None);
    let mut many = q.clone();
    many[5] = 17;
    assert_eq!(dns::question(&many), None);
    // NOTIFY and UPDATE name their zone where a query has its question; IQUERY is refused.
    let mut notify = q.clone();
    notify[2] = 4 << 3;
    assert_eq!(dns::question(&notify), name("mail.example.org"));
    notify[2] = 1 << 3;
    assert_eq!(dns::question(&notify), None);
    let mut ptr = q.clone();
    ptr[12] = 0xc0;
    assert_eq!(dns::question(&ptr), None);
    for cut in 0..q.len() {
        assert_eq!(dns::question(&q[..cut]), None, "cut at {cut}");
    }
}

#[test]
fn globs_match_as_documented() {
    let m = |p: &str, n: &str| glob_matches(p.as_bytes(), n.as_bytes());
    assert!(m("*.zoom.us", "a.b.zoom.us"));
    assert!(m("*.zoom.us", "x.zoom.us"));
    assert!(!m("*.zoom.us", "zoom.us"));
    assert!(!m("*.zoom.us", "zoom.us.evil.com"));
    assert!(m("zoom.us", "ZOOM.us"));
    assert!(m("*", "anything"));
    assert!(m("*cdn*", "a.cdn.b"));
    assert!(m("a*b*c", "aXbYc"));
    assert!(!m("a*b*c", "aXbY"));
    assert!(m("**", ""));
    assert!(!m("", "a"));
}

proptest! {
    #[test]
    fn no_bytes_make_a_parser_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = tls::client_hello_sni(&bytes);
        let _ = http::request(&bytes);
        let _ = dns::question(&bytes);
        let _ = dns::tcp_question(&bytes);
        let _ = server_name(6, &bytes, &mut Pending::default());
        let _ = server_name(6, &bytes, &mut Pending::HttpHeaders);
        let _ = server_name(17, &bytes, &mut Pending::default());
        let _ = glob_matches(&bytes[..bytes.len() / 2], &bytes[bytes.len() / 2..]);
    }

    #[test]
    fn any_corruption_of_a_client_hello_gives_its_name_or_none(
        pos in 0usize..200,
        byte in any::<u8>(),
        cut in 0usize..300,
    ) {
        let mut rec = client_hello(Some(b"video.example.com"));
        if pos < rec.len() {
            rec[pos] = byte;
        }
        rec.truncate(cut.max(1));
        if let Some(n) = tls::client_hello_sni(&rec) {
            // A corrupted length may shift where the name is read from, but what comes out is
            // always a well-formed name.
            prop_assert!(n.as_bytes().iter().all(|b| b.is_ascii_graphic()));
        }
    }
}

/// The first UDP payload of a committed capture (classic pcap, Ethernet, IPv4 without
/// options): a real QUIC client Initial.
fn first_initial(pcap: &[u8]) -> Vec<u8> {
    let caplen = u32::from_le_bytes(pcap[32..36].try_into().unwrap()) as usize;
    pcap[40 + 42..40 + caplen].to_vec()
}

#[test]
fn real_quic_initials_give_their_names() {
    let v1 = first_initial(include_bytes!("../../../captures/quic-v1.pcap"));
    let v2 = first_initial(include_bytes!("../../../captures/quic-v2.pcap"));
    let name_of = |d: &[u8]| quic::initial_sni(d).map(|n| n.as_str().to_string());
    assert_eq!(name_of(&v1).as_deref(), Some("api.cirrus-ci.com"));
    assert_eq!(name_of(&v2).as_deref(), Some("localhost"));
    // v1 bytes labelled as v2 (and the reverse) derive other keys: the tag fails.
    let mut swapped = v1.clone();
    swapped[1..5].copy_from_slice(&0x6b33_43cfu32.to_be_bytes());
    swapped[0] = (swapped[0] & 0xcf) | 0x10;
    assert_eq!(name_of(&swapped), None);
}

proptest! {
    #[test]
    fn a_damaged_quic_initial_gives_its_name_or_none(
        pos in 0usize..1400,
        byte in any::<u8>(),
        cut in 0usize..1400,
    ) {
        let mut d = first_initial(include_bytes!("../../../captures/quic-v1.pcap"));
        if pos < d.len() {
            d[pos] = byte;
        }
        d.truncate(cut.max(1));
        if let Some(n) = quic::initial_sni(&d) {
            prop_assert_eq!(n.as_str(), "api.cirrus-ci.com");
        }
    }
}

#[test]
fn gather_keeps_bytes_by_offset_and_knows_its_prefix() {
    let mut g = Gather::default();
    g.put(5, b"fgh");
    assert_eq!(g.prefix(), b"");
    g.put(0, b"abcde");
    assert_eq!(g.prefix(), b"abcdefgh");
    g.put(MAX_HELLO - 2, b"xyz");
    g.put(usize::MAX, b"z");
    assert_eq!(g.prefix().len(), 8, "a gap stays a gap");
    g.clear();
    assert_eq!(g.prefix(), b"");
    let all = vec![1u8; MAX_HELLO + 10];
    g.put(0, &all);
    assert_eq!(g.prefix().len(), MAX_HELLO);
}

#[test]
fn a_client_hello_split_over_segments_is_gathered() {
    let rec = client_hello(Some(b"split.example.com"));
    assert!(rec.len() > 100);
    let (a, rest) = rec.split_at(40);
    let (b, c) = rest.split_at(rest.len() / 2);
    // Sequence numbers that wrap around in the middle of the hello.
    let start = u32::MAX - 50;
    let at = |off: usize| At {
        dir: 1,
        seq: start.wrapping_add(off as u32),
    };
    let mut g = Gather::default();
    let mut p = Pending::default();
    assert_eq!(tls::client_hello(a), tls::Hello::Incomplete);
    assert_eq!(server_name_at(6, a, at(0), &mut p, &mut g), None);
    assert!(p.gathering(), "{p:?}");
    // The last piece first, the other direction's bytes, a retransmission of the first.
    assert_eq!(server_name_at(6, c, at(40 + b.len()), &mut p, &mut g), None);
    let other = At {
        dir: 0,
        seq: at(40).seq,
    };
    assert_eq!(server_name_at(6, &[0xee; 30], other, &mut p, &mut g), None);
    assert_eq!(server_name_at(6, a, at(0), &mut p, &mut g), None);
    assert_eq!(
        server_name_at(6, b, at(40), &mut p, &mut g),
        Some((NameSource::Sni, name("split.example.com").unwrap()))
    );
    assert_eq!(p, Pending::Nothing);
    // Without a name, the gathering ends when the hello is whole.
    let nameless = client_hello(None);
    let (a, b) = nameless.split_at(30);
    let mut p = Pending::default();
    assert_eq!(server_name_at(6, a, at(0), &mut p, &mut g), None);
    assert!(p.gathering());
    assert_eq!(server_name_at(6, b, at(30), &mut p, &mut g), None);
    assert_eq!(p, Pending::Nothing);
    // A hello that never completes is given up after MAX_HELLO_PIECES payloads.
    let mut p = Pending::default();
    server_name_at(6, &rec[..40], at(0), &mut p, &mut g);
    for _ in 0..MAX_HELLO_PIECES {
        server_name_at(6, &rec[..40], at(0), &mut p, &mut g);
    }
    assert_eq!(p, Pending::Nothing);
    // The one-payload form never leaves a gathering behind.
    let mut p = Pending::default();
    assert_eq!(server_name(6, &rec[..40], &mut p), None);
    assert_eq!(p, Pending::Nothing);
}

#[test]
fn names_with_an_empty_label_are_no_names() {
    // Found by the `payload` fuzz target: a DNS label holding dots made `.wwwgoogle.`.
    for bad in [&b".a.com"[..], b"a..com", b"a.com..", b"."] {
        assert_eq!(
            Name::from_host(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(name("a.com.").unwrap().as_str(), "a.com");
    let mut q = dns_query("x", 1);
    // The label `x` becomes `.wwwgoogle.` (11 bytes), dots and all.
    q.splice(12..14, [11u8].iter().copied().chain(*b".wwwgoogle."));
    assert_eq!(dns::question(&q), None);
}

#[test]
fn a_dns_question_of_digits_alone_is_no_name() {
    // Found by the `payload` fuzz target: a question for `1`; and `192.0.2.1` as labels.
    assert_eq!(dns::question(&dns_query("1", 1)), None);
    assert_eq!(dns::question(&dns_query("192.0.2.1", 1)), None);
    assert_eq!(
        dns::question(&dns_query("1.2.0.192.in-addr.arpa", 1)),
        name("1.2.0.192.in-addr.arpa")
    );
}

#[test]
fn netbios_name_queries_are_not_dns() {
    // Found by benches/apps_oracle.py: NBNS on port 137 has DNS's layout and a first label of
    // 32 letters A-P (here `WORKGROUP`, encoded).
    let encoded = "FHEPFCELEHFCEPFFFACACACACACACABN";
    assert_eq!(dns::question(&dns_query(encoded, 1)), None);
    assert!(!dns::is_message(&dns_query(encoded, 1)));
    // A 32-letter label that is not all A-P is a name like any other.
    let long = "abcdefghijklmnopqrstuvwxyzabcdef.example";
    assert_eq!(dns::question(&dns_query(long, 1)), name(long));
}

#[test]
fn the_software_of_an_ssh_banner_is_kept_cut_to_a_token() {
    let sw = |p: &[u8]| detect::ssh_software(p).map(|t| t.as_str().to_string());
    assert_eq!(
        sw(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n").as_deref(),
        Some("OpenSSH_9.6p1")
    );
    assert_eq!(
        sw(b"SSH-2.0-dropbear_2022.83\r\n").as_deref(),
        Some("dropbear_2022.83")
    );
    // Old Cisco banners put a minus in the software: it stays.
    assert_eq!(sw(b"SSH-1.99-Cisco-1.25\n").as_deref(), Some("Cisco-1.25"));
    // Cut to MAX_TOKEN; a banner split before its end keeps what came.
    let long = format!("SSH-2.0-{}\r\n", "x".repeat(80));
    assert_eq!(sw(long.as_bytes()).map(|s| s.len()), Some(MAX_TOKEN));
    assert_eq!(sw(b"SSH-2.0-PuTTY").as_deref(), Some("PuTTY"));
    // Not a banner, or none to keep.
    assert_eq!(sw(b"SSH-2.0\r\n"), None);
    assert_eq!(sw(b"SSH-2.0-\r\n"), None);
    assert_eq!(sw(b"GET / HTTP/1.1\r\n"), None);
    assert_eq!(sw(b"SSH-2.0-caf\xc3\xa9\r\n"), None);
}
