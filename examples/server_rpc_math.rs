//! Port of paho.mqtt.python examples/server_rpc_math.py: an MQTT v5 remote procedure call (RPC) server that adds or multiplies numbers.
//!
//! Run: `cargo run --example server_rpc_math -- [--host localhost] [--port 1883] [--count N] [--debug]`
//!
//! Requests arrive on `requests/math/add` or `requests/math/mult` with a JSON array of numbers;
//! the answer goes to the request's Response Topic with its Correlation Data. `--count N`
//! (not in the original, which serves forever) disconnects after answering N requests.
//! Also not in the original: an `on_subscribe` that prints "Subscribed", so that a script
//! (or a test) knows when requests can be sent. Try it with `client_rpc_math`.

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{py_bytes, rc_list, Args};
use mqtt_sync as mqtt;

// The math functions exported

fn add(nums: &[f64]) -> f64 {
    let mut sum = 0.0;
    for x in nums {
        sum += x;
    }
    sum
}

fn mult(nums: &[f64]) -> f64 {
    let mut prod = 1.0;
    for x in nums {
        prod *= x;
    }
    prod
}

// Remember that the MQTTv5 callback takes the additional 'props' parameter.
fn on_connect(
    mqttc: &mqtt::Client,
    flags: mqtt::ConnectFlags,
    rc: mqtt::ReasonCode,
    props: &mqtt::Properties,
) {
    println!("Connected: '{flags:?}', '{rc}', '{props:?}'");
    if !flags.session_present {
        println!("Subscribing to math requests");
        if let Err(e) = mqttc.subscribe("requests/math/#", mqtt::QoS::AtMostOnce) {
            println!("subscribe failed: {e}");
        }
    }
}

// Not in the original: tells when the server is ready for requests.
fn on_subscribe(
    _mqttc: &mqtt::Client,
    mid: u16,
    reason_code_list: &[mqtt::ReasonCode],
    _props: &mqtt::Properties,
) {
    println!("Subscribed: {mid} {}", rc_list(reason_code_list));
}

// Each incoming message should be an RPC request on the
// 'requests/math/#' topic.
fn on_message(mqttc: &mqtt::Client, msg: &mqtt::Message) {
    println!("{}  {}", msg.topic(), py_bytes(msg.payload()));

    // Get the response properties, abort if they're not given
    let props = msg.properties();
    let (Some(corr_id), Some(reply_to)) =
        (props.correlation_data.clone(), props.response_topic.clone())
    else {
        println!("No reply requested");
        return;
    };

    // The command parameters are in the payload
    let nums: Vec<f64> = match serde_json::from_slice(msg.payload()) {
        Ok(nums) => nums,
        Err(e) => {
            println!("Bad request: {e}");
            return;
        }
    };

    // The requested command is at the end of the topic
    let mut res = 0.0;
    if msg.topic().ends_with("add") {
        res = add(&nums);
    } else if msg.topic().ends_with("mult") {
        res = mult(&nums);
    }

    // Now we have the result, res, so send it back on the 'reply_to'
    // topic using the same correlation ID as the request.
    println!(
        "Sending response {res:?} on '{reply_to}': {}",
        py_bytes(&corr_id)
    );
    // `respond` publishes to the request's Response Topic with its Correlation Data (what
    // Python spells out with a Properties object and publish).
    let payload = serde_json::to_string(&res).expect("a number serializes");
    if let Err(e) = mqttc.respond(msg, payload, mqtt::QoS::AtLeastOnce) {
        println!("publish failed: {e}");
    }
}

fn on_log(_mqttc: &mqtt::Client, _level: mqtt::LogLevel, string: &str) {
    println!("{string}");
}

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port", "--count"]);
    let count: Option<usize> = args.opt(&["--count"]);
    let answered = Arc::new(AtomicUsize::new(0));

    // Typically with an RPC service, you want to make sure that you're the only
    // client answering requests for specific topics. Using a known client ID
    // might help.
    let mqttc = mqtt::Client::builder()
        .client_id("paho_rpc_math_srvr")
        .protocol(mqtt::Protocol::V5)
        .build()?;
    mqttc.on_message(move |mqttc, msg| {
        on_message(mqttc, msg);
        // Not in the original: stop after --count requests.
        if Some(answered.fetch_add(1, Ordering::SeqCst) + 1) == count {
            let _ = mqttc.disconnect();
        }
    });
    mqttc.on_connect(on_connect);
    mqttc.on_subscribe(on_subscribe);

    // Uncomment to enable debug messages (or pass --debug)
    if args.flag(&["--debug"]) {
        mqttc.on_log(on_log);
    }

    mqttc.connect_with(mqtt::ConnectOptions {
        port: args.port(),
        clean_start: mqtt::CleanStart::Never,
        ..mqtt::ConnectOptions::new(args.host())
    })?;
    mqttc.loop_forever()
}
