use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as one 128-bit number (IPv4 mapped into IPv6, `::ffff:a.b.c.d`),
/// cheap to hash and compare; ordered like its 16 bytes in network order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr(pub u128);

impl From<IpAddr> for Addr {
    #[inline]
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Addr(0xffff << 32 | u32::from(v4) as u128),
            IpAddr::V6(v6) => Addr(u128::from(v6)),
        }
    }
}

impl Addr {
    pub fn to_ip(self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }

    pub fn is_v4(self) -> bool {
        self.0 >> 32 == 0xffff
    }
}

impl Default for Addr {
    fn default() -> Self {
        Addr::from(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// One end of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
}

/// Canonical bidirectional five-tuple (+ optional VLAN): the two ends are
/// stored lower-first, so both directions of a conversation map to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    pub protocol: u8,
    pub lo: Endpoint,
    pub hi: Endpoint,
    /// Outer VLAN id when VLANs are part of the key, else 0.
    pub vlan: u16,
}

/// Hashes the key as five machine words (the derived impl feeds the fields
/// one by one, with more mixing rounds per packet).
/// Agrees with `Eq`: every field goes in.
impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.lo.addr.0 as u64);
        state.write_u64((self.lo.addr.0 >> 64) as u64);
        state.write_u64(self.hi.addr.0 as u64);
        state.write_u64((self.hi.addr.0 >> 64) as u64);
        state.write_u64(
            (self.lo.port as u64)
                | (self.hi.port as u64) << 16
                | (self.vlan as u64) << 32
                | (self.protocol as u64) << 48,
        );
    }
}

impl FlowKey {
    /// Builds the canonical key for a packet from `src` to `dst`; the second
    /// value is `true` when the packet travels lo → hi.
    #[inline]
    pub fn new(protocol: u8, src: Endpoint, dst: Endpoint, vlan: u16) -> (FlowKey, bool) {
        let lo_to_hi = src <= dst;
        let (lo, hi) = if lo_to_hi { (src, dst) } else { (dst, src) };
        (
            FlowKey {
                protocol,
                lo,
                hi,
                vlan,
            },
            lo_to_hi,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ep(a: [u8; 16], port: u16) -> Endpoint {
        Endpoint {
            addr: Addr(u128::from_be_bytes(a)),
            port,
        }
    }

    proptest! {
        /// Both directions of a conversation give the same key, with opposite
        /// orientation (unless both ends are identical).
        #[test]
        fn canonical_key_is_direction_free(a in any::<[u8;16]>(), b in any::<[u8;16]>(),
                                           pa in any::<u16>(), pb in any::<u16>(), proto in any::<u8>(), vlan in 0u16..4096) {
            let (k1, o1) = FlowKey::new(proto, ep(a, pa), ep(b, pb), vlan);
            let (k2, o2) = FlowKey::new(proto, ep(b, pb), ep(a, pa), vlan);
            prop_assert_eq!(k1, k2);
            if (a, pa) != (b, pb) {
                prop_assert_ne!(o1, o2);
            }
            prop_assert!(k1.lo <= k1.hi);
        }

        /// Distinct conversations never share a key.
        #[test]
        fn distinct_tuples_distinct_keys(a in any::<[u8;16]>(), b in any::<[u8;16]>(), c in any::<[u8;16]>(),
                                         pa in any::<u16>(), pb in any::<u16>(), pc in any::<u16>()) {
            let (k1, _) = FlowKey::new(6, ep(a, pa), ep(b, pb), 0);
            let (k2, _) = FlowKey::new(6, ep(a, pa), ep(c, pc), 0);
            let same_pair = (b, pb) == (c, pc);
            prop_assert_eq!(k1 == k2, same_pair);
        }

        #[test]
        fn addr_roundtrip(v4 in any::<[u8;4]>()) {
            let ip = IpAddr::V4(Ipv4Addr::from(v4));
            prop_assert_eq!(Addr::from(ip).to_ip(), ip);
        }
    }
}
