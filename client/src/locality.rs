//! Which worker to use: a worker on this host (same advertised host name) first, for reads and
//! writes; otherwise, for writes, the live worker with the most free space.

use alluvium_proto::{BlockLocation, WorkerInfo, WorkerNetAddress};

/// Whether a worker address is on this host.
pub fn is_local(address: Option<&WorkerNetAddress>, hostname: &str) -> bool {
    address.is_some_and(|a| a.host.eq_ignore_ascii_case(hostname))
}

pub(crate) fn is_live(w: &WorkerInfo) -> bool {
    w.state.eq_ignore_ascii_case("LIVE")
}

fn free_bytes(w: &WorkerInfo) -> u64 {
    w.capacity_bytes.saturating_sub(w.used_bytes)
}

/// The worker to write a new file's blocks to: a live local worker, else the live worker with the
/// most free space (ties broken by the lower id, so the choice is stable). Workers in `exclude`
/// (ids that just failed) are skipped.
pub fn choose_write_worker<'a>(
    workers: &'a [WorkerInfo],
    hostname: &str,
    exclude: &[u64],
) -> Option<&'a WorkerInfo> {
    let candidates = || {
        workers
            .iter()
            .filter(|w| is_live(w) && !exclude.contains(&w.id) && w.address.is_some())
    };
    if let Some(local) = candidates()
        .filter(|w| is_local(w.address.as_ref(), hostname))
        .max_by_key(|w| (free_bytes(w), std::cmp::Reverse(w.id)))
    {
        return Some(local);
    }
    candidates().max_by_key(|w| (free_bytes(w), std::cmp::Reverse(w.id)))
}

/// The order in which to try a block's locations: local ones first (fastest tier first), then the
/// others in the master's order.
pub fn order_locations(locations: &[BlockLocation], hostname: &str) -> Vec<BlockLocation> {
    let mut local: Vec<BlockLocation> = Vec::new();
    let mut remote: Vec<BlockLocation> = Vec::new();
    for l in locations {
        if is_local(l.address.as_ref(), hostname) {
            local.push(l.clone());
        } else {
            remote.push(l.clone());
        }
    }
    local.sort_by_key(|l| tier_rank(&l.tier));
    local.extend(remote);
    local
}

/// Rank of a tier alias for ordering (MEM before SSD before HDD; unknown aliases last).
pub fn tier_rank(alias: &str) -> u8 {
    match alias.to_ascii_uppercase().as_str() {
        "MEM" => 0,
        "SSD" => 1,
        "HDD" => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: u64, host: &str, cap: u64, used: u64, state: &str) -> WorkerInfo {
        WorkerInfo {
            id,
            address: Some(WorkerNetAddress {
                host: host.into(),
                rpc_port: 29999,
                http_port: 30000,
            }),
            state: state.into(),
            capacity_bytes: cap,
            used_bytes: used,
            ..Default::default()
        }
    }

    #[test]
    fn local_worker_first() {
        let ws = vec![
            worker(1, "a", 100, 0, "LIVE"),
            worker(2, "me", 100, 99, "LIVE"),
        ];
        assert_eq!(choose_write_worker(&ws, "me", &[]).unwrap().id, 2);
        assert_eq!(choose_write_worker(&ws, "ME", &[]).unwrap().id, 2);
    }

    #[test]
    fn else_most_free_live_worker() {
        let ws = vec![
            worker(1, "a", 100, 90, "LIVE"),
            worker(2, "b", 100, 10, "LIVE"),
            worker(3, "c", 1000, 0, "LOST"),
            worker(4, "d", 100, 10, "LIVE"),
        ];
        assert_eq!(choose_write_worker(&ws, "me", &[]).unwrap().id, 2);
        assert_eq!(choose_write_worker(&ws, "me", &[2]).unwrap().id, 4);
        assert!(choose_write_worker(&[], "me", &[]).is_none());
        let lost = vec![worker(3, "me", 1000, 0, "LOST")];
        assert!(choose_write_worker(&lost, "me", &[]).is_none());
    }

    #[test]
    fn locations_local_first() {
        let loc = |id, host: &str, tier: &str| BlockLocation {
            worker_id: id,
            address: Some(WorkerNetAddress {
                host: host.into(),
                ..Default::default()
            }),
            tier: tier.into(),
        };
        let ordered = order_locations(
            &[loc(1, "x", "MEM"), loc(2, "me", "HDD"), loc(3, "me", "MEM")],
            "me",
        );
        let ids: Vec<u64> = ordered.iter().map(|l| l.worker_id).collect();
        assert_eq!(ids, vec![3, 2, 1]);
    }
}
