use std::net::IpAddr;
use std::str::FromStr;

use crate::key::Addr;

/// An IPv4 or IPv6 prefix such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: Addr,
    /// Prefix length over the 128-bit mapped form.
    bits: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid network {input:?}: {why} (expected e.g. 10.0.0.0/8 or 2001:db8::/32)")]
pub struct CidrError {
    input: String,
    why: &'static str,
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| CidrError {
            input: s.to_string(),
            why,
        };
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip.trim().parse().map_err(|_| err("not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len {
            Some(l) => l
                .trim()
                .parse()
                .map_err(|_| err("prefix length is not a number"))?,
            None => max,
        };
        if len > max {
            return Err(err("prefix length too long for the address family"));
        }
        let bits = if ip.is_ipv4() { len + 96 } else { len };
        Ok(Cidr {
            addr: Addr::from(ip),
            bits,
        })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let a = Addr::from(ip).0;
        let n = self.addr.0;
        let mask = if self.bits == 0 {
            0
        } else {
            u128::MAX << (128 - self.bits as u32)
        };
        a & mask == n & mask
    }
}

/// The "local" side of the network, for uplink/downlink.
#[derive(Debug, Clone, Default)]
pub struct LocalNets(pub Vec<Cidr>);

/// Direction of a packet relative to the local network (or flow initiator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the local side (or from the flow's initiator) outwards.
    Up,
    /// Towards the local side (or towards the initiator).
    Down,
    /// Both or neither end local.
    Local,
    Transit,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Local => "local",
            Direction::Transit => "transit",
        }
    }
}

impl LocalNets {
    /// Parses `CIDR[,CIDR…]`.
    pub fn parse(list: &str) -> Result<Self, CidrError> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(LocalNets)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Direction of a packet from `src` to `dst`; without local networks,
    /// `forward` (initiator → responder) decides.
    pub fn direction(&self, src: IpAddr, dst: IpAddr, forward: bool) -> Direction {
        if self.0.is_empty() {
            return if forward {
                Direction::Up
            } else {
                Direction::Down
            };
        }
        match (self.is_local(src), self.is_local(dst)) {
            (true, false) => Direction::Up,
            (false, true) => Direction::Down,
            (true, true) => Direction::Local,
            (false, false) => Direction::Transit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let n: Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(n.contains("192.168.44.1".parse().unwrap()));
        assert!(!n.contains("192.169.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("bogus/8".parse::<Cidr>().is_err());
        let nets = LocalNets::parse("10.0.0.0/8,fd00::/8").unwrap();
        let d = nets.direction(
            "10.1.1.1".parse().unwrap(),
            "8.8.8.8".parse().unwrap(),
            false,
        );
        assert_eq!(d, Direction::Up);
    }
}
