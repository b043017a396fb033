//! Partition values as the gate, `--partition` and backfills take them:
//! only the canonical spelling parses, it prints back as written, and the
//! partitions around it can be computed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::domain::{Granularity, PartitionKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Granularity::parse(text);
    for granularity in [Granularity::Day, Granularity::Hour] {
        let Ok(key) = PartitionKey::parse(text, granularity) else {
            continue;
        };
        assert_eq!(key.to_string(), text, "a partition prints as written");
        assert_eq!(
            PartitionKey::parse(&key.to_string(), granularity).as_ref(),
            Ok(&key)
        );
        assert_eq!(key.granularity(), granularity);
        assert!(key.start() < key.end());
        assert_eq!(key.next().prev(), key);
        assert_eq!(key.offset(-7).offset(7), key);
        let range = PartitionKey::range(key.offset(-3), key.clone()).expect("an ordered range");
        assert_eq!(range.len(), 4);
        assert_eq!(range.last(), Some(&key));
    }
});
