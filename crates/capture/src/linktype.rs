use std::fmt;

/// A pcap `LINKTYPE_*` value (the link-layer header type of an interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const PPP: LinkType = LinkType(9);
    pub const RAW_OLD: LinkType = LinkType(12);
    pub const PPP_HDLC: LinkType = LinkType(50);
    pub const PPP_ETHER: LinkType = LinkType(51);
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// The libpcap name of the link type (`DLT_` suffix), or `LINKTYPE_<n>`.
    pub fn name(self) -> String {
        let known = match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            6 => "IEEE802",
            8 => "SLIP",
            9 => "PPP",
            10 => "FDDI",
            12 => "RAW",
            50 => "PPP_HDLC",
            51 => "PPP_ETHER",
            101 => "RAW",
            104 => "C_HDLC",
            105 => "IEEE802_11",
            107 => "FRELAY",
            108 => "LOOP",
            113 => "LINUX_SLL",
            119 => "PRISM_HEADER",
            127 => "IEEE802_11_RADIO",
            187 => "BLUETOOTH_HCI_H4",
            189 => "USB_LINUX",
            195 => "IEEE802_15_4_WITHFCS",
            197 => "ERF",
            201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
            220 => "USB_LINUX_MMAPPED",
            228 => "IPV4",
            229 => "IPV6",
            230 => "IEEE802_15_4_NOFCS",
            231 => "DBUS",
            239 => "NFLOG",
            240 => "NETANALYZER",
            249 => "USBPCAP",
            253 => "NETLINK",
            254 => "BLUETOOTH_LINUX_MONITOR",
            263 => "IPOIB",
            271 => "VSOCK",
            276 => "LINUX_SLL2",
            _ => return format!("LINKTYPE_{}", self.0),
        };
        known.to_string()
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}
