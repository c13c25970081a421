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
        1719 | 1720 => "h323", // H.225.0 RAS (UDP) and call signalling (TCP)
        1935 => "rtmp",
        2010 | 2011 if udp => "teamspeak", // TeamSpeak 3 weblist (server list) heartbeats
        2152 => "gtp-u",
        2123 => "gtp-c",
        2427 | 2727 => "mgcp",   // gateway, call agent (RFC 3435)
        2944 | 2945 => "megaco", // IANA megaco-h248 (text), h248-binary
        3306 => "mysql",
        3389 => "rdp",
        // 3478 STUN/TURN (RFC 8489), 3479-3481 Microsoft Teams' media relays,
        // 19302-19309 Google's STUN servers.
        3478..=3481 | 19302..=19309 => "stun",
        3544 => "teredo",
        4789 => "vxlan",
        4569 => "iax2",
        5060 | 5061 => "sip",
        5222 => "xmpp",
        5353 => "mdns",
        5355 => "llmnr",
        5432 => "postgresql",
        6081 => "geneve",
        6379 => "redis",
        6881..=6889 => "bittorrent",
        8801..=8810 => "zoom",      // Zoom's published meeting media ports
        9987 if udp => "teamspeak", // TeamSpeak 3 voice
        10011 | 30033 if !udp => "teamspeak", // TeamSpeak 3 ServerQuery, file transfer
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{TCP, UDP};

    #[test]
    fn voip_and_conferencing_ports() {
        assert_eq!(by_port(UDP, 9987), Some("teamspeak"));
        assert_eq!(by_port(TCP, 9987), None);
        assert_eq!(for_ports(UDP, 2011, 2010), Some("teamspeak"));
        assert_eq!(by_port(TCP, 2010), None);
        assert_eq!(by_port(TCP, 10011), Some("teamspeak"));
        assert_eq!(by_port(UDP, 30033), None);
        assert_eq!(by_port(UDP, 2427), Some("mgcp"));
        assert_eq!(by_port(TCP, 2727), Some("mgcp"));
        assert_eq!(by_port(UDP, 2944), Some("megaco"));
        assert_eq!(by_port(UDP, 1719), Some("h323"));
        assert_eq!(by_port(TCP, 1720), Some("h323"));
        assert_eq!(by_port(UDP, 4569), Some("iax2"));
        for p in [8801, 8805, 8810] {
            assert_eq!(by_port(UDP, p), Some("zoom"));
        }
        assert_eq!(by_port(UDP, 8811), None);
        for p in [3478, 3479, 3481, 19302, 19305, 19309] {
            assert_eq!(by_port(UDP, p), Some("stun"), "{p}");
        }
        assert_eq!(by_port(UDP, 3482), None);
        // Existing entries are kept.
        assert_eq!(by_port(UDP, 443), Some("quic"));
        assert_eq!(by_port(TCP, 443), Some("https"));
        assert_eq!(for_ports(UDP, 40000, 3478), Some("stun"));
    }
}
