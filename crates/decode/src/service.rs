//! Well-known service names by port (IANA assignments in common use).

/// Service name of a TCP/UDP/SCTP port, when it is a well-known one.
pub fn by_port(protocol: u8, port: u16) -> Option<&'static str> {
    let udp = protocol == crate::proto::UDP;
    Some(match port {
        20 => "ftp-data",
        21 => "ftp",
        22 => "ssh",
        23 => "telnet",
        25 | 587 => "smtp",
        53 => "dns",
        67 | 68 => "dhcp",
        69 => "tftp",
        80 | 8080 | 8000 => "http",
        88 => "kerberos",
        110 => "pop3",
        123 => "ntp",
        137..=139 => "netbios",
        143 => "imap",
        161 | 162 => "snmp",
        179 => "bgp",
        389 => "ldap",
        443 | 8443 if udp => "quic",
        443 | 8443 => "https",
        445 => "smb",
        465 => "smtps",
        500 | 4500 => "ipsec",
        514 => "syslog",
        554 => "rtsp",
        636 => "ldaps",
        853 => "dns-over-tls",
        873 => "rsync",
        993 => "imaps",
        995 => "pop3s",
        1194 => "openvpn",
        1723 => "pptp",
        1812 | 1813 => "radius",
        1883 => "mqtt",
        1900 => "ssdp",
        1935 => "rtmp",
        2152 => "gtp-u",
        2123 => "gtp-c",
        3306 => "mysql",
        3389 => "rdp",
        3478 | 19302 => "stun",
        3544 => "teredo",
        4789 => "vxlan",
        5060 | 5061 => "sip",
        5222 => "xmpp",
        5353 => "mdns",
        5355 => "llmnr",
        5432 => "postgresql",
        6081 => "geneve",
        6379 => "redis",
        6881..=6889 => "bittorrent",
        51820 => "wireguard",
        _ => return None,
    })
}

/// Service of a conversation between two ports: the well-known one, preferring
/// the lower port when both are (e.g. 20↔21 is ftp-data's 20).
pub fn for_ports(protocol: u8, a: u16, b: u16) -> Option<&'static str> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    by_port(protocol, lo).or_else(|| by_port(protocol, hi))
}
