//! DNS SRV look-up for `connect_srv` (feature `srv`, hickory-resolver).
//!
//! hickory is asynchronous: the look-up builds a current-thread tokio runtime inside
//! [`lookup`] and drops it before returning, so no runtime exists anywhere else in the crate.

#![cfg_attr(not(feature = "srv"), allow(dead_code))]

use std::net::SocketAddr;
use std::time::Instant;

use crate::{Error, Result};

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub target: String,
    pub port: u16,
}

/// The service name queried for `domain`: `_mqtt._tcp.<domain>`, or
/// `_secure-mqtt._tcp.<domain>` when `secure` (TLS configured).
pub(crate) fn service_name(domain: &str, secure: bool) -> String {
    let domain = domain.trim_end_matches('.');
    if secure {
        format!("_secure-mqtt._tcp.{domain}")
    } else {
        format!("_mqtt._tcp.{domain}")
    }
}

/// Looks up the broker candidates for `domain`, in the order to try them: priority
/// ascending, and within a priority by RFC 2782 weighted random selection. `nameserver`
/// overrides the system configuration (`/etc/resolv.conf`); it is asked over UDP, then TCP.
/// Targets come without the trailing dot. No record gives `Error::Dns("no SRV record for
/// _mqtt._tcp.<domain>")`.
#[cfg(not(feature = "srv"))]
pub(crate) fn lookup(
    _domain: &str,
    _secure: bool,
    _nameserver: Option<SocketAddr>,
    _deadline: Instant,
) -> Result<Vec<(String, u16)>> {
    Err(Error::NotSupported(
        "connect_srv: built without the srv feature".into(),
    ))
}

/// Looks up the broker candidates for `domain`, in the order to try them: priority
/// ascending, and within a priority by RFC 2782 weighted random selection. `nameserver`
/// overrides the system configuration (`/etc/resolv.conf`); it is asked over UDP, then TCP.
/// Targets come without the trailing dot. No record gives `Error::Dns("no SRV record for
/// _mqtt._tcp.<domain>")`.
#[cfg(feature = "srv")]
pub(crate) fn lookup(
    domain: &str,
    secure: bool,
    nameserver: Option<SocketAddr>,
    deadline: Instant,
) -> Result<Vec<(String, u16)>> {
    let records = query(domain, secure, nameserver, deadline)?;
    let mut rng = XorShift::from_time();
    let ordered = order(records, &mut || rng.next());
    if ordered.is_empty() {
        return Err(Error::Dns(
            format!(
                "{}: the service is not available (SRV target \".\")",
                service_name(domain, secure)
            )
            .into(),
        ));
    }
    Ok(ordered)
}

/// The raw SRV records for `domain`.
#[cfg(feature = "srv")]
pub(crate) fn query(
    domain: &str,
    secure: bool,
    nameserver: Option<SocketAddr>,
    deadline: Instant,
) -> Result<Vec<SrvRecord>> {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::proto::rr::RData;
    use hickory_resolver::TokioResolver;

    let name = service_name(domain, secure);
    if domain.trim_end_matches('.').is_empty() {
        return Err(Error::invalid("connect_srv: the domain is empty"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::Dns(crate::error::Detail::caused(
                format!("cannot start the resolver: {e}"),
                e,
            ))
        })?;
    let dns_err =
        |e: &dyn std::fmt::Display| Error::Dns(format!("SRV look-up of {name} failed: {e}").into());
    let result = rt.block_on(async {
        let mut builder = match nameserver {
            Some(ns) => {
                let mut conns = vec![ConnectionConfig::udp(), ConnectionConfig::tcp()];
                for c in &mut conns {
                    c.port = ns.port();
                }
                let server = NameServerConfig::new(ns.ip(), true, conns);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| dns_err(&e))?,
        };
        let opts = builder.options_mut();
        opts.timeout = std::time::Duration::from_secs(5);
        opts.attempts = 2;
        let resolver = builder.build().map_err(|e| dns_err(&e))?;
        // A fully qualified name: no search-list expansion; the connect deadline bounds it.
        let left = deadline.saturating_duration_since(Instant::now());
        let found = tokio::time::timeout(left, resolver.srv_lookup(format!("{name}.")))
            .await
            .map_err(|_| Error::Timeout)?;
        match found {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => Some(SrvRecord {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_utf8().trim_end_matches('.').to_string(),
                    }),
                    _ => None,
                })
                .collect::<Vec<_>>()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(dns_err(&e)),
        }
    });
    let records = result?;
    if records.is_empty() {
        return Err(Error::Dns(format!("no SRV record for {name}").into()));
    }
    Ok(records)
}

/// Orders SRV records for trying: priority ascending; within one priority, RFC 2782's
/// weighted random selection (records of weight 0 first in the running sum, then pick a
/// number in `0..=sum` and take the first record whose running sum reaches it, repeat).
/// `rng` yields uniformly random numbers. Targets "." (service not offered) are dropped.
pub(crate) fn order(
    mut records: Vec<SrvRecord>,
    rng: &mut dyn FnMut() -> u64,
) -> Vec<(String, u16)> {
    records.retain(|r| !r.target.is_empty() && r.target != ".");
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let end = rest
            .iter()
            .position(|r| r.priority != first.priority)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        rest = tail;
        // Zero weights first, as RFC 2782 says, so they have a small chance to come first.
        let mut group: Vec<&SrvRecord> = group.iter().collect();
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            let pick = rng() % (total + 1);
            let mut running = 0u64;
            let idx = group
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            let r = group.remove(idx);
            out.push((r.target.clone(), r.port));
        }
    }
    out
}

/// A tiny xorshift64* generator (no `rand` dependency): good enough to spread load.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    #[cfg_attr(not(feature = "srv"), allow(dead_code))]
    pub(crate) fn from_time() -> XorShift {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let c = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut s = XorShift::new(
            nanos ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id()),
        );
        // Mix the seed a little.
        for _ in 0..4 {
            s.next();
        }
        s
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, target: &str, port: u16) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            target: target.into(),
            port,
        }
    }

    #[test]
    fn service_names() {
        assert_eq!(service_name("example.com", false), "_mqtt._tcp.example.com");
        assert_eq!(
            service_name("example.com.", true),
            "_secure-mqtt._tcp.example.com"
        );
    }

    #[test]
    fn priority_first() {
        let mut rng = XorShift::new(1);
        let recs = vec![
            rec(20, 0, "c", 3),
            rec(10, 5, "a", 1),
            rec(30, 1, "d", 4),
            rec(10, 5, "b", 2),
        ];
        for _ in 0..50 {
            let o = order(recs.clone(), &mut || rng.next());
            assert_eq!(o.len(), 4);
            let mut first_two: Vec<_> = o[..2].iter().map(|t| t.0.as_str()).collect();
            first_two.sort();
            assert_eq!(first_two, ["a", "b"]);
            assert_eq!(o[2], ("c".to_string(), 3));
            assert_eq!(o[3], ("d".to_string(), 4));
        }
    }

    #[test]
    fn dot_target_is_dropped() {
        let mut rng = XorShift::new(7);
        assert!(order(vec![rec(0, 0, ".", 1883)], &mut || rng.next()).is_empty());
    }

    #[test]
    fn weights_spread_the_first_choice() {
        // Weights 60/30/10 (and a 0): over many draws the first choice follows the weights.
        let recs = vec![
            rec(1, 60, "a", 1),
            rec(1, 30, "b", 1),
            rec(1, 10, "c", 1),
            rec(1, 0, "z", 1),
        ];
        let mut rng = XorShift::new(0xDEAD_BEEF);
        let mut counts = std::collections::HashMap::new();
        let n = 20_000;
        for _ in 0..n {
            let o = order(recs.clone(), &mut || rng.next());
            assert_eq!(o.len(), 4);
            *counts.entry(o[0].0.clone()).or_insert(0u32) += 1;
        }
        let share = |k: &str| f64::from(*counts.get(k).unwrap_or(&0)) / f64::from(n);
        // Expected 60/101, 30/101, 10/101, 1/101 (the zero weight wins a pick of 0).
        assert!((share("a") - 60.0 / 101.0).abs() < 0.02, "{counts:?}");
        assert!((share("b") - 30.0 / 101.0).abs() < 0.02, "{counts:?}");
        assert!((share("c") - 10.0 / 101.0).abs() < 0.015, "{counts:?}");
        assert!(share("z") < 0.02, "{counts:?}");
    }

    #[test]
    fn equal_zero_weights_are_all_listed() {
        let recs = vec![rec(0, 0, "a", 1), rec(0, 0, "b", 2), rec(0, 0, "c", 3)];
        let mut rng = XorShift::new(3);
        let mut o = order(recs, &mut || rng.next());
        o.sort();
        assert_eq!(o, vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
    }

    #[test]
    fn xorshift_is_deterministic_per_seed() {
        let (mut a, mut b) = (XorShift::new(42), XorShift::new(42));
        for _ in 0..10 {
            assert_eq!(a.next(), b.next());
        }
        assert_ne!(XorShift::from_time().next(), XorShift::from_time().next());
    }
}
