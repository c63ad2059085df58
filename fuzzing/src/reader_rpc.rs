//! The reader's JSON-RPC calls (`ReaderCall::from_rpc`) on any JSON. A
//! refusal is BAD_QUERY; a call that parses writes its method and params
//! (`ReaderCall::params`, what `RemoteReader` sends) that parse back to the
//! same call.

use pm_http::reader_api::{CallError, ReaderCall};
use pm_models::RejectionCode;
use serde_json::Value;

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(data) else { return };
    let method = request.get("method").and_then(Value::as_str).unwrap_or("message");
    let Some(Value::Object(params)) = request.get("params") else { return };
    match ReaderCall::from_rpc(method, params) {
        Ok(call) => {
            let Value::Object(written) = call.params() else { panic!("params are an object") };
            let again = ReaderCall::from_rpc(call.method(), &written);
            assert!(matches!(&again, Ok(c) if *c == call), "{call:?} wrote {written:?}, read back as {again:?}");
        }
        Err(CallError::Refused(rejection)) => assert_eq!(rejection.code, RejectionCode::BadQuery),
        Err(CallError::MethodNotFound(name)) => assert_eq!(name, method),
    }
}
