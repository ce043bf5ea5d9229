//! Where a tenant's events live: one partition of the events topic, so that
//! one engine holds all of a tenant's leads and reps and decides for them
//! (rep capacity, fairness) without asking another engine.
//!
//! The partition is the one the Kafka Java client's default partitioner
//! picks for the tenant id as the message key: `murmur2(key) & 0x7fffffff`
//! modulo the partition count (librdkafka calls this partitioner
//! `murmur2_random`; its default, `consistent_random`, is CRC32 and picks
//! other partitions). An event whose tenant belongs elsewhere is rejected
//! as `wrong_partition` by the Kafka intake. The default tenant (empty id)
//! belongs to no partition in particular: its events may be keyed by lead,
//! as before tenants existed.

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), over `data`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // The Java switch falls through from the highest byte down.
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition (of `partitions`) that a message keyed by `key` goes to
/// under the murmur2 partitioner.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// The key an event is published under: its tenant, so that all of a
/// tenant's events share a partition; the lead for the default tenant (a
/// lead's events stay in order either way).
pub fn message_key(event: &crate::domain::LeadEvent) -> &str {
    if event.tenant_id.is_empty() {
        &event.lead_id
    } else {
        &event.tenant_id
    }
}

/// The partition a tenant's events belong to; `None` for the default
/// tenant, which any partition may carry.
pub fn home_partition(tenant_id: &str, partitions: i32) -> Option<i32> {
    (!tenant_id.is_empty()).then(|| partition_of(tenant_id.as_bytes(), partitions))
}

/// Whether two tenant ids are the same. Every single-tenant deployment
/// compares empty ids on every event, and an empty `String` points at no
/// memory (address 1): glibc 2.36's AVX-512 `memcmp`, which `==` on two
/// strings of equal length calls even for none, loads from both pointers
/// under an all-zero mask, and on AMD Zen 4 such a load from an unmapped
/// page takes a fault-suppression assist — about 65 ns a comparison
/// measured on the CI machine (a `perf` profile of `leadflow run` put
/// 5–8 % of the engine's thread there). Empty ids compare here without it.
pub fn same_tenant(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_clients_test_vectors() {
        // From Kafka's `UtilsTest.testMurmur2`.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn a_tenant_has_one_home_and_the_default_tenant_none() {
        assert_eq!(home_partition("", 12), None);
        let home = home_partition("acme", 12).unwrap();
        assert!((0..12).contains(&home));
        assert_eq!(home_partition("acme", 12), Some(home));
        assert_eq!(home_partition("acme", 1), Some(0));
    }

    #[test]
    fn tenant_ids_are_compared_as_strings_are() {
        // Empty ids (no allocation behind them) and allocated ones alike.
        let empty_allocated = String::with_capacity(8);
        for (a, b) in [
            ("", ""),
            ("", empty_allocated.as_str()),
            ("", "t"),
            ("t", ""),
            ("tenant-01", "tenant-01"),
            ("tenant-01", "tenant-02"),
            ("tenant-01", "tenant-1"),
        ] {
            assert_eq!(same_tenant(a, b), a == b, "{a:?} vs {b:?}");
        }
    }
}
