//! Counted limits: at most so many connections open, and so many in the
//! handshake, in all and from any one address, so that one address cannot
//! keep everyone else out. A [`Slot`] is one unit of a [`Limit`]; the
//! listener takes it before a connection gets a thread, and dropping it
//! gives it back, so a slot cannot leak whichever way a connection ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The address a limit counts a peer under: its IPv4 address (also when it
/// comes IPv4-mapped), or its IPv6 /64, which one host or one network
/// usually holds whole.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// A limit in all and per address.
#[derive(Clone)]
pub struct Limit {
    counts: Arc<Mutex<Counts>>,
    /// What is counted, for the refusal: "connections".
    what: &'static str,
    max: usize,
    per_address: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One unit of a [`Limit`], given back when dropped.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    address: IpAddr,
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Two counters, changed together before unlocking: always consistent.
    counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Limit {
    /// At most `max` units of `what` in all, `per_address` from any one address.
    pub fn new(what: &'static str, max: usize, per_address: usize) -> Limit {
        Limit { counts: Arc::default(), what, max, per_address }
    }

    /// Takes a unit for `address` (see [`address_key`]), or says which
    /// limit is reached.
    pub fn take(&self, address: IpAddr) -> Result<Slot, String> {
        let mut counts = lock(&self.counts);
        if counts.total >= self.max {
            return Err(format!("limit of {} {} reached", self.max, self.what));
        }
        let from_here = counts.by_address.entry(address).or_default();
        if *from_here >= self.per_address {
            return Err(format!("limit of {} {} from one address reached", self.per_address, self.what));
        }
        *from_here += 1;
        counts.total += 1;
        Ok(Slot { counts: self.counts.clone(), address })
    }

    /// Units taken now.
    pub fn taken(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total -= 1;
        if let Some(from_here) = counts.by_address.get_mut(&self.address) {
            *from_here -= 1;
            if *from_here == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot_and_slots_come_back() {
        let limit = Limit::new("things", 3, 2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limit.take(a).unwrap();
        let _second = limit.take(a).unwrap();
        assert_eq!(limit.take(a).err().unwrap(), "limit of 2 things from one address reached");
        let _third = limit.take(b).unwrap();
        assert_eq!(limit.take(b).err().unwrap(), "limit of 3 things reached");
        drop(first);
        assert!(limit.take(a).is_ok());
        assert_eq!(limit.taken(), 2, "the slot just taken was dropped at once");
    }

    #[test]
    fn addresses_are_counted_as_ipv4_or_ipv6_slash_64() {
        let key = |text: &str| address_key(text.parse().unwrap()).to_string();
        assert_eq!(key("::ffff:127.0.0.1"), "127.0.0.1");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("192.168.1.10"), "192.168.1.10");
    }
}
