//! The gateway's reading of a GraphQL request before the schema runs
//! (`pm_teleferic::check_request`): the body as JSON, `application/graphql`
//! or a form, the document's parse, and its root-field and alias limits.
//! A refusal is always MALFORMED_ENVELOPE (section 7), never a panic or a
//! stack overflow, whatever the nesting.

use pm_models::RejectionCode;

const CONTENT_TYPES: [&str; 4] =
    ["application/json", "application/graphql", "application/x-www-form-urlencoded", "text/plain; charset=utf-8"];

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Some((mode, body)) = data.split_first() else { return };
    let content_type = CONTENT_TYPES[usize::from(*mode) % CONTENT_TYPES.len()];
    if let Err(rejection) = pm_teleferic::check_request(content_type, body) {
        assert_eq!(rejection.code, RejectionCode::MalformedEnvelope, "{}", rejection.error);
    }
}
