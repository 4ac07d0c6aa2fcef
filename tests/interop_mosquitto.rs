//! The client-level interop scenarios (tests/support/interop.rs) against mosquitto: the
//! reference column of docs/interop.md. Each test starts its own broker.

#[macro_use]
mod support;

interop_tests! { start: crate::support::interop::mosquitto,
    v31: [connect, qos_matrix, retained, will, session_resume],
    v311: [connect, qos_matrix, retained, will, session_resume],
    v5: [connect, qos_matrix, retained, will, session_resume, v5_properties,
         v5_request_response, v5_subscription_options, v5_limits, v5_redirect],
}
