//! Port of paho.mqtt.python examples/client_rpc_math.py: an MQTT v5 remote procedure call (RPC) client using Response Topic and Correlation Data.
//!
//! Run: `cargo run --example client_rpc_math -- [--host localhost] [--port 1883] add|mult n1 n2 ...`
//!
//! Sends the numbers to `requests/math/<add|mult>` with a Response Topic of
//! `replies/math/<client id>` (the id the broker assigned) and Correlation Data `1`, prints
//! the answer and exits. Start `server_rpc_math` first.
//!
//! With `--request` it uses `Client::request` instead (mqtt-sync's request/response helper):
//! the same exchange in one call.
//!
//! Python's module globals (`client_id`, `reply_to`, `reply`) become state shared with the
//! callbacks; its `time.sleep(0.1)` polling loops are kept, as in the original.

#[path = "common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{py_bytes, Args};
use mqtt_sync as mqtt;

// This correlates the outbound request with the returned reply
const CORR_ID: &[u8] = b"1";

#[derive(Default)]
struct Globals {
    // These will be updated with the server-assigned Client ID
    client_id: String,
    reply_to: Option<String>,
    // This is sent in the message callback when we get the response
    reply: Option<Vec<u8>>,
}

// The MQTTv5 callback takes the additional 'props' parameter.
fn on_connect(
    mqttc: &mqtt::Client,
    g: &Mutex<Globals>,
    flags: mqtt::ConnectFlags,
    rc: mqtt::ReasonCode,
    props: &mqtt::Properties,
) {
    let mut g = g.lock().unwrap();
    println!("Connected: '{flags:?}', '{rc}', '{props:?}'");
    if let Some(id) = &props.assigned_client_identifier {
        g.client_id = id.clone();
    }
    let reply_to = format!("replies/math/{}", g.client_id);
    if let Err(e) = mqttc.subscribe(&reply_to, mqtt::QoS::AtMostOnce) {
        println!("subscribe failed: {e}");
    }
    g.reply_to = Some(reply_to);
}

// An incoming message should be the reply to our request
fn on_message(_mqttc: &mqtt::Client, g: &Mutex<Globals>, msg: &mqtt::Message) {
    println!(
        "{} {}  {:?}",
        msg.topic(),
        py_bytes(msg.payload()),
        msg.properties()
    );
    let props = msg.properties();
    if props.correlation_data.is_none() {
        println!("No correlation ID");
    }

    // Match the response to the request correlation ID.
    if props.correlation_data.as_deref() == Some(CORR_ID) {
        g.lock().unwrap().reply = Some(msg.payload().to_vec());
    }
}

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port"]);
    let argv = args.positional();
    if argv.len() < 2 {
        println!("USAGE: client_rpc_math [--host H] [--port P] [add|mult] n1 n2 ...");
        std::process::exit(1);
    }

    let globals = Arc::new(Mutex::new(Globals {
        client_id: "mathcli".into(),
        ..Default::default()
    }));

    let mqttc = mqtt::Client::builder()
        .client_id("")
        .protocol(mqtt::Protocol::V5)
        .build()?;
    let g = globals.clone();
    mqttc.on_message(move |c, msg| on_message(c, &g, msg));
    let g = globals.clone();
    mqttc.on_connect(move |c, flags, rc, props| on_connect(c, &g, flags, rc, props));

    mqttc.connect_with(mqtt::ConnectOptions {
        port: args.port(),
        clean_start: mqtt::CleanStart::Always,
        ..mqtt::ConnectOptions::new(args.host())
    })?;
    mqttc.loop_start()?;

    // Wait for connection to set `client_id`, etc.
    // (`reply_to` is set at the end of on_connect, which may still be running when
    // is_connected() turns true, so wait for that too.)
    while !mqttc.is_connected() || globals.lock().unwrap().reply_to.is_none() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply_to = globals.lock().unwrap().reply_to.clone().unwrap();

    // Properties for the request specify the ResponseTopic and CorrelationData
    let props = mqtt::Properties {
        correlation_data: Some(CORR_ID.to_vec()),
        response_topic: Some(reply_to),
        ..Default::default()
    };

    // Uncomment to see what got set
    //println!("Client ID: {}", globals.lock().unwrap().client_id);
    //println!("Reply To: {:?}", props.response_topic);
    //println!("{props:?}");

    // The requested operation, 'add' or 'mult'
    let func = &argv[0];

    // Gather the numeric parameters as an array of numbers
    // These can be int's or float's
    let mut nums: Vec<f64> = Vec::new();
    for s in &argv[1..] {
        nums.push(
            s.parse()
                .unwrap_or_else(|_| common::usage_error(&format!("{s:?} is not a number"))),
        );
    }

    // Send the request
    let topic = format!("requests/math/{func}");
    let payload = serde_json::to_string(&nums).expect("numbers serialize");
    let reply = if args.flag(&["--request"]) {
        // mqtt-sync's request helper: its own Response Topic and Correlation Data, and a
        // wait for exactly this request's answer (safe from many threads at once).
        let _ = props;
        mqttc
            .request(
                &topic,
                payload,
                mqtt::QoS::AtLeastOnce,
                Duration::from_secs(10),
            )?
            .into_payload()
    } else {
        mqttc.publish_with_properties(&topic, payload, mqtt::QoS::AtLeastOnce, false, props)?;

        // Wait for the reply
        loop {
            if let Some(reply) = globals.lock().unwrap().reply.take() {
                break reply;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Extract the response and print it.
    let rsp: serde_json::Value =
        serde_json::from_slice(&reply).map_err(|e| mqtt::Error::InvalidArgument(e.to_string()))?;
    println!("Response: {rsp}");

    mqttc.loop_stop()
}
