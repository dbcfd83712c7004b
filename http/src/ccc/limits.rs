//! How many sockets one client host and one Bitcoin address may hold open: beyond them a new
//! connection is refused (429 before the upgrade) and a further `auth` answers an `error`.
//! Counted per node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::metrics as m;

/// Sockets one client address (IP) may hold open on a node.
pub const SOCKETS_PER_IP: usize = 1024;
/// Authenticated sockets one Bitcoin address may hold open on a node.
pub const SOCKETS_PER_ADDRESS: usize = 64;

/// The counts, shared by every worker of the server.
#[derive(Debug, Clone, Default)]
pub struct Sockets {
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    by_ip: HashMap<IpAddr, usize>,
    by_address: HashMap<String, usize>,
}

/// One socket counted; dropping it (the connection ends) counts it out.
#[derive(Debug)]
pub struct Held {
    sockets: Sockets,
    ip: Option<IpAddr>,
    address: Option<String>,
}

impl Sockets {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while counting leaves the counts usable.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Count a new connection from `ip`; `None` when that host holds too many.
    pub fn open(&self, ip: Option<IpAddr>) -> Option<Held> {
        if let Some(ip) = ip {
            let mut counts = self.counts();
            let count = counts.by_ip.entry(ip).or_default();
            if *count >= SOCKETS_PER_IP {
                m::record_refused_socket("per_ip");
                return None;
            }
            *count += 1;
        }
        Some(Held { sockets: self.clone(), ip, address: None })
    }
}

impl Held {
    /// Count the socket for the address it authenticated as; `false` when that address holds
    /// too many.
    pub fn authenticate(&mut self, address: &str) -> bool {
        let mut counts = self.sockets.counts();
        let count = counts.by_address.entry(address.to_owned()).or_default();
        if *count >= SOCKETS_PER_ADDRESS {
            m::record_refused_socket("per_address");
            return false;
        }
        *count += 1;
        drop(counts);
        self.address = Some(address.to_owned());
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.sockets.counts();
        if let Some(ip) = self.ip {
            release(&mut counts.by_ip, &ip);
        }
        if let Some(address) = self.address.take() {
            release(&mut counts.by_address, &address);
        }
    }
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_counted_per_host_and_address_and_counted_out_when_they_end() {
        let sockets = Sockets::default();
        let host: IpAddr = [127, 0, 0, 1].into();
        let mut held: Vec<Held> = (0..SOCKETS_PER_IP).filter_map(|_| sockets.open(Some(host))).collect();
        assert_eq!(held.len(), SOCKETS_PER_IP);
        assert!(sockets.open(Some(host)).is_none(), "one more from the host is refused");
        assert!(sockets.open(Some([10, 0, 0, 1].into())).is_some(), "another host is not");
        let mut authenticated = 0;
        for one in held.iter_mut().take(SOCKETS_PER_ADDRESS + 1) {
            authenticated += usize::from(one.authenticate("1A"));
        }
        assert_eq!(authenticated, SOCKETS_PER_ADDRESS, "one more for the address is refused");
        held.truncate(SOCKETS_PER_ADDRESS - 1);
        assert!(sockets.open(Some(host)).is_some(), "ended sockets are counted out");
        let mut next = sockets.open(Some(host)).unwrap_or_else(|| panic!("room again"));
        assert!(next.authenticate("1A"), "and their addresses too");
        drop(held);
        drop(next);
        assert!(sockets.counts().by_ip.len() <= 1 && sockets.counts().by_address.is_empty());
    }
}
