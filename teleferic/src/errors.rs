//! The one mapping from a refusal to a GraphQL error (PROTOCOL.md section 7).
//!
//! Every [`Rejection`] the gateway returns, whether the authorizer or the
//! reader sent it or the gateway made it, becomes a GraphQL error whose
//! `message` is the rejection's sentence and whose `extensions.code` is
//! [`RejectionCode::as_str`]. Errors the GraphQL layer raises on its own
//! (a parse error, a missing required field, a value a scalar cannot parse)
//! carry no code; [`label_uncoded_errors`] gives them `MALFORMED_ENVELOPE`, so
//! every error a client sees has a code from the contract's table.

use async_graphql::{
    Context, ErrorExtensionValues, ErrorExtensions, PathSegment, QueryPathSegment, Response, ServerError,
};
use pm_models::{Rejection, RejectionCode};

/// The key of `extensions` that holds the contract's code.
pub const CODE_EXTENSION: &str = "code";

/// A rejection as a resolver error (a field's `Err`).
pub fn graphql_error(rejection: Rejection) -> async_graphql::Error {
    let code = rejection.code;
    async_graphql::Error::new(rejection.error)
        .extend_with(|_, extensions| extensions.set(CODE_EXTENSION, code.as_str()))
}

/// The value of a *nullable* field whose resolution may be refused: on a
/// refusal the field is `null` and the error is listed with the field's path,
/// as the GraphQL spec handles field errors. (async-graphql on its own would
/// drop the field from `data` instead of writing `null`.)
pub fn null_on_rejection<T>(ctx: &Context<'_>, result: Result<Option<T>, Rejection>) -> Option<T> {
    match result {
        Ok(value) => value,
        Err(rejection) => {
            let mut error = graphql_error(rejection).into_server_error(ctx.item.pos);
            error.path = field_path(ctx);
            ctx.add_error(error);
            None
        }
    }
}

fn field_path(ctx: &Context<'_>) -> Vec<PathSegment> {
    let Some(node) = ctx.path_node.as_ref() else {
        return Vec::new();
    };
    let mut path: Vec<PathSegment> = std::iter::once(node)
        .chain(node.parents())
        .map(|node| match node.segment {
            QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
            QueryPathSegment::Index(index) => PathSegment::Index(index),
        })
        .collect();
    path.reverse();
    path
}

/// A rejection as a request-level error, for refusals made before the
/// request reaches the schema (a body too large, a body that is not JSON).
pub fn server_error(rejection: &Rejection) -> ServerError {
    let mut error = ServerError::new(rejection.error.clone(), None);
    error.extensions = Some(code_extensions(rejection.code));
    error
}

/// A complete GraphQL response (`data: null`) carrying one rejection.
pub fn rejection_response(rejection: &Rejection) -> Response {
    Response::from_errors(vec![server_error(rejection)])
}

/// Gives `MALFORMED_ENVELOPE` to every error that has no code: the GraphQL
/// layer refused the request itself (section 7, last sentence before the table).
pub fn label_uncoded_errors(response: &mut Response) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get(CODE_EXTENSION).is_none() {
            extensions.set(CODE_EXTENSION, RejectionCode::MalformedEnvelope.as_str());
        }
    }
}

/// The codes a response carries, for the request's log line.
pub fn error_codes(response: &Response) -> Vec<String> {
    response
        .errors
        .iter()
        .filter_map(|error| error.extensions.as_ref()?.get(CODE_EXTENSION))
        .map(|code| match code {
            async_graphql::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn code_extensions(code: RejectionCode) -> ErrorExtensionValues {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set(CODE_EXTENSION, code.as_str());
    extensions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(error: &ServerError) -> Option<String> {
        match error.extensions.as_ref()?.get(CODE_EXTENSION)? {
            async_graphql::Value::String(text) => Some(text.clone()),
            _ => None,
        }
    }

    #[test]
    fn a_rejection_keeps_its_sentence_and_code() {
        let error = graphql_error(Rejection::new(RejectionCode::UnknownSender, "sender is not registered"))
            .into_server_error(async_graphql::Pos::default());
        assert_eq!(error.message, "sender is not registered");
        assert_eq!(code_of(&error).as_deref(), Some("UNKNOWN_SENDER"));
    }

    #[test]
    fn errors_without_a_code_become_malformed_envelope_and_others_keep_theirs() {
        let mut response = Response::from_errors(vec![
            ServerError::new("Unknown field \"nope\"", None),
            server_error(&Rejection::bad_query("limit is outside 1-1000")),
        ]);
        label_uncoded_errors(&mut response);
        assert_eq!(code_of(&response.errors[0]).as_deref(), Some("MALFORMED_ENVELOPE"));
        assert_eq!(code_of(&response.errors[1]).as_deref(), Some("BAD_QUERY"));
        assert_eq!(error_codes(&response), vec!["MALFORMED_ENVELOPE", "BAD_QUERY"]);
    }

    #[test]
    fn a_rejection_response_has_null_data() {
        let response = rejection_response(&Rejection::new(RejectionCode::PayloadTooLarge, "request body is too large"));
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["data"], serde_json::Value::Null);
        assert_eq!(json["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
    }
}
