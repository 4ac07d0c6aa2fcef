//! The client-level interop scenarios (tests/support/interop.rs) against rumqttd 0.20.0
//! (tests/support/rumqttd.rs): the rumqttd column of docs/interop.md. Each test starts its
//! own broker (a child process, ~0.1 s). rumqttd has no MQTT 3.1: `v31::connect` checks
//! that it refuses it. Where rumqttd differs from mosquitto the scenarios assert what it
//! does (its quirks in `RumqttdBroker`), see docs/interop.md.

#[macro_use]
mod support;

interop_tests! { start: crate::support::interop::rumqttd,
    v31: [connect],
    v311: [connect, qos_matrix, retained, will, session_resume],
    v5: [connect, qos_matrix, retained, will, session_resume, v5_properties,
         v5_request_response, v5_subscription_options, v5_limits, v5_redirect],
}
