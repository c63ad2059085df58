//! `SignedTimestamp::parse` on any `T`, and the timestamp strings and
//! RFC 3339 dates inside. A parsed `T` parses again to itself; its
//! timestamp string is valid; freshness and signature checks never panic,
//! whatever the clock says.

use crate::common;

use pm_models::signed_timestamp::{Freshness, SignedTimestamp};
use pm_models::time::{Micros, TimestampString};

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Some(text) = common::text(data) else { return };
    if let Some(ts) = TimestampString::parse(&text) {
        assert_eq!(ts.as_str(), text);
        assert!(ts.nanos() >= 0 && ts.nanos() < 1_000_000_000_000_000_000_000);
        assert_eq!(TimestampString::parse(ts.as_str()), Some(ts));
    }
    if let Some(micros) = Micros::parse_rfc3339(&text) {
        assert_eq!(Micros::parse_rfc3339(&micros.to_rfc3339()), Some(micros), "RFC 3339 round trip");
    }
    let Ok(t) = SignedTimestamp::parse(&text) else { return };
    assert_eq!(SignedTimestamp::parse(t.as_str()).as_ref(), Ok(&t), "parse is stable");
    assert!(TimestampString::parse(t.timestamp().as_str()).is_some());
    let node = common::node_key();
    let _ = t.verify_node_signature(node.public().verifying_key());
    for now in [i64::MIN, -1, 0, 1_700_000_000_000_000, i64::MAX] {
        let _ = t.check_fresh(Micros(now), Freshness::default());
    }
}
