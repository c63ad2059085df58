//! The GraphQL argument parsers (`pm_models::api::parse_*`,
//! `PageRequest::parse`). A refusal is always BAD_QUERY; what parses
//! prints to text that parses to the same value; a page's limit is 1-1000.

use pm_models::api::{parse_address, parse_day, parse_hash, parse_message_hash, parse_public_key, PageRequest};
use pm_models::RejectionCode;

fn bad_query<T>(result: &Result<T, pm_models::Rejection>) {
    if let Err(rejection) = result {
        assert_eq!(rejection.code, RejectionCode::BadQuery, "{}", rejection.error);
    }
}

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else { return };
    match mode % 6 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let parsed = parse_address("a", text);
            bad_query(&parsed);
            if let Ok(address) = parsed {
                assert_eq!(parse_address("a", address.as_str()).ok(), Some(address));
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let parsed = parse_hash("h", text);
            bad_query(&parsed);
            assert_eq!(parsed.is_ok(), parse_message_hash("h", text).is_ok());
        }
        2 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let parsed = parse_public_key("k", text);
            bad_query(&parsed);
            if let Ok(key) = parsed {
                assert_eq!(parse_public_key("k", &key.to_wire()).ok(), Some(key));
            }
        }
        3 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let parsed = parse_day("d", text);
            bad_query(&parsed);
            if let Ok(day) = parsed {
                let printed = day.to_string();
                assert_eq!(parse_day("d", &printed).ok(), Some(day), "{text:?} printed as {printed:?}");
                let (start, end) = day.range();
                assert_eq!(end.0 - start.0, 86_400_000_000);
            }
        }
        _ => {
            let (limit, after) = match rest.split_first_chunk::<8>() {
                Some((limit, after)) if mode % 6 == 4 => (Some(i64::from_le_bytes(*limit)), after),
                Some((_, after)) => (None, after),
                None => (None, rest),
            };
            let after = std::str::from_utf8(after).ok();
            let parsed = PageRequest::parse(limit, after);
            bad_query(&parsed);
            if let Ok(page) = parsed {
                assert!((1..=PageRequest::MAX_LIMIT).contains(&page.limit));
                assert_eq!(page.after.as_ref().map(|h| h.as_str()), after);
            }
        }
    }
}
