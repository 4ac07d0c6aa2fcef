//! MQTT 5 enhanced authentication with SCRAM-SHA-256 (RFC 5802 / RFC 7677): a client that
//! logs in, verifies the broker's proof, optionally re-authenticates once, and exits.
//! Paho Python has no counterpart (it has no enhanced-authentication callback).
//!
//! Run: `cargo run --example auth_scram -- --host H --port P --user alice --password secret
//! [--reauth] [--debug]`
//!
//! The broker needs a SCRAM-SHA-256 authentication plugin, such as the mosquitto plugin of
//! `tests/plugins/scram_auth.c` (what `tests/examples.rs` runs it against). The exchange:
//! CONNECT carries the Authentication Method `SCRAM-SHA-256` and the client-first-message
//! (set in `on_pre_connect` with `authentication_set`, so that every attempt has a fresh nonce);
//! the broker's AUTH 0x18 (server-first) reaches `on_auth`, which answers the
//! client-final-message; CONNACK carries the server-final-message, checked in `on_connect`.
//! `--reauth` then runs the same exchange again on the open connection
//! (`reauthenticate`, ending with the broker's AUTH 0x00).
//!
//! Exit status: 0 after a verified login (and re-authentication), 1 when refused or when
//! the broker's proof does not verify.

#[path = "common/mod.rs"]
mod common;
// The SCRAM client of the tests, std + sha2/hmac/pbkdf2 (dev-dependencies), self-contained.
#[allow(dead_code)]
#[path = "../tests/support/scram.rs"]
mod scram;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::Args;
use mqtt_sync as mqtt;
use mqtt_sync::{AuthReply, ReasonCode};
use scram::ScramClient;

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port", "--user", "--password"]);
    let user = args
        .value(&["--user"])
        .unwrap_or_else(|| common::usage_error("--user is required"));
    let password = args
        .value(&["--password"])
        .unwrap_or_else(|| common::usage_error("--password is required"));
    let reauth = args.flag(&["--reauth"]);
    let (u, p) = (user.clone(), password.clone());

    let client = mqtt::Client::builder()
        .client_id("")
        .protocol(mqtt::Protocol::V5)
        .build()?;
    if args.flag(&["--debug"]) {
        client.on_log(|_c, _level, line| println!("{line}"));
    }

    // One SCRAM exchange at a time; a new one for each (re-)authentication.
    let exchange = Arc::new(Mutex::new(ScramClient::new(&user, &password)));
    let ok = Arc::new(AtomicBool::new(false));

    // The broker's AUTH packets: a challenge (0x18) gets the client-final-message; the
    // end of a re-authentication (0x00) carries the server-final-message to verify.
    let ex = exchange.clone();
    let ok2 = ok.clone();
    client.on_auth(move |c, reason_code, props| {
        let data = props.authentication_data.as_deref().unwrap_or_default();
        let mut ex = ex.lock().unwrap_or_else(|e| e.into_inner());
        if reason_code == ReasonCode::CONTINUE_AUTHENTICATION {
            match ex.client_final(data) {
                Ok(msg) => AuthReply::Continue(msg.into_bytes()),
                Err(e) => {
                    println!("bad server-first-message: {e}");
                    AuthReply::Abort(ReasonCode::NOT_AUTHORIZED)
                }
            }
        } else if reason_code == ReasonCode::SUCCESS {
            match ex.verify_server_final(data) {
                Ok(()) => {
                    println!("re-authenticated: server signature verified");
                    ok2.store(true, Ordering::SeqCst);
                    let _ = c.disconnect();
                    AuthReply::Done
                }
                Err(e) => {
                    println!("re-authentication: {e}");
                    AuthReply::Abort(ReasonCode::NOT_AUTHORIZED)
                }
            }
        } else {
            AuthReply::Abort(ReasonCode::PROTOCOL_ERROR)
        }
    });

    let ex = exchange.clone();
    let ok2 = ok.clone();
    client.on_connect(move |c, _flags, reason_code, props| {
        if reason_code.is_failure() {
            println!("refused: {reason_code} (0x{:02X})", reason_code.value());
            let _ = c.disconnect(); // no reconnect: loop_forever returns
            return;
        }
        let server_final = props.authentication_data.as_deref().unwrap_or_default();
        let mut ex = ex.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = ex.verify_server_final(server_final) {
            println!("connected, but the broker's proof does not verify: {e}");
            let _ = c.disconnect_with(ReasonCode::NOT_AUTHORIZED, mqtt::Properties::default());
            return;
        }
        println!("connected: server signature verified");
        if reauth {
            *ex = ScramClient::new(&user, &password);
            if let Err(e) = c.reauthenticate(ex.client_first()) {
                println!("reauthenticate: {e}");
                let _ = c.disconnect();
            }
        } else {
            ok2.store(true, Ordering::SeqCst);
            let _ = c.disconnect();
        }
    });

    // Every attempt (reconnects included) starts a new exchange with a fresh nonce: the
    // method and the client-first-message go into that attempt's CONNECT.
    let ex = exchange.clone();
    client.on_pre_connect(move |c| {
        let mut ex = ex.lock().unwrap_or_else(|e| e.into_inner());
        *ex = ScramClient::new(&u, &p);
        if let Err(e) = c.authentication_set(scram::METHOD, Some(ex.client_first().as_bytes())) {
            println!("authentication_set: {e}");
        }
    });

    client.connect(&args.host(), args.port(), 60)?;
    client.loop_forever()?;
    if !ok.load(Ordering::SeqCst) {
        std::process::exit(1);
    }
    Ok(())
}
