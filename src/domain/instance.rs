//! Who this agent is among the agents sharing a registry: the host, the
//! address its HTTP server actually bound, and a random id drawn at each
//! start. Scheduler claims and gates are recorded under it.

use std::fmt;
use std::net::SocketAddr;

/// One start of one agent. Two agents on one host with one configuration
/// still differ (they cannot bind the same address, and each draws its own
/// id); a restarted agent is a new instance of the same *lineage* (host and
/// address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    host: String,
    addr: Option<SocketAddr>,
    run: String,
    id: String,
}

impl Instance {
    /// An instance on `host`, served at `addr` when it serves HTTP, with a
    /// fresh random id.
    pub fn new(host: impl Into<String>, addr: Option<SocketAddr>) -> Self {
        let run = uuid::Uuid::new_v4().as_simple().to_string()[..12].to_owned();
        Self::with_run(host.into(), addr, run)
    }

    /// This host's instance, served at `addr`.
    pub fn detect(addr: Option<SocketAddr>) -> Self {
        Self::new(hostname(), addr)
    }

    fn with_run(host: String, addr: Option<SocketAddr>, run: String) -> Self {
        let id = match addr {
            Some(addr) => format!("{host}/{addr}/{run}"),
            None => format!("{host}/{run}"),
        };
        Self {
            host,
            addr,
            run,
            id,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The address the HTTP server bound, if it serves.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The random id drawn at this start.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// `host/addr/run` (`host/run` without an address): this agent's name in
    /// the registry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `host/addr/`, the start of the id of every earlier start of this
    /// agent on this host and address. None of those still runs, since this
    /// one holds the address, so what they left undecided is this agent's
    /// to clean up. `None` without an address: nothing proves the others
    /// gone.
    pub fn lineage(&self) -> Option<String> {
        self.addr.map(|addr| format!("{}/{addr}/", self.host))
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// The host's name: `$HOSTNAME` when set (what a container or the operator
/// says), else the kernel's, else `/etc/hostname`, else `warden`.
pub fn hostname() -> String {
    let non_empty = |h: String| {
        let h = h.trim().to_owned();
        (!h.is_empty()).then_some(h)
    };
    std::env::var("HOSTNAME")
        .ok()
        .and_then(non_empty)
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .and_then(non_empty)
        })
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .and_then(non_empty)
        })
        .unwrap_or_else(|| "warden".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_is_a_new_instance_of_the_same_lineage() {
        let addr: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let a = Instance::new("db1", Some(addr));
        let b = Instance::new("db1", Some(addr));
        assert_ne!(a.id(), b.id());
        assert_eq!(a.lineage(), b.lineage());
        assert_eq!(a.lineage().as_deref(), Some("db1/127.0.0.1:9464/"));
        assert!(a.id().starts_with("db1/127.0.0.1:9464/"));
        assert_eq!(a.run().len(), 12);
        assert_eq!(a.to_string(), a.id());
    }

    #[test]
    fn another_address_is_another_lineage() {
        let a = Instance::new("db1", Some("127.0.0.1:9464".parse().unwrap()));
        let b = Instance::new("db1", Some("127.0.0.1:9465".parse().unwrap()));
        assert_ne!(a.lineage(), b.lineage());
        assert!(!b.id().starts_with(a.lineage().unwrap().as_str()));
    }

    #[test]
    fn without_an_address_there_is_no_lineage() {
        let a = Instance::new("db1", None);
        assert_eq!(a.lineage(), None);
        assert!(a.id().starts_with("db1/"));
    }

    #[test]
    fn the_host_name_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
