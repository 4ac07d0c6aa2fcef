//! `mqtt-sync-bench`: the benchmark driver, the ack-only sink broker and three of the
//! clients under test (mqtt-sync, rumqttc, a raw-socket reference), one binary.
//!
//! ```text
//! mqtt-sync-bench run [--smoke] [--rounds N] [--out FILE] [--c-bin PATH] [--python PATH --paho PATH]
//! mqtt-sync-bench sink port=P
//! mqtt-sync-bench client <mqtt-sync|rumqttc|raw> <pub|sub|rtt|idle|many> key=value...
//! ```
//!
//! Every client (the C and Python peers too) speaks the same command line and prints
//! `READY` (subscribers, once subscribed) and one `RESULT key=value ...` line.

mod driver;
mod ms;
mod raw;
mod rq;
mod sink;
mod util;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("run") => driver::main(&args[1..]),
        Some("sink") => {
            let a = util::Args::parse(&args[1..]);
            sink::serve(a.port)
        }
        Some("client") if args.len() >= 3 => {
            let a = util::Args::parse(&args[3..]);
            let r = match args[1].as_str() {
                "mqtt-sync" => ms::run(&args[2], &a),
                "rumqttc" => rq::run(&args[2], &a),
                "raw" => raw::run(&args[2], &a),
                other => Err(format!("unknown client {other}")),
            };
            match r {
                Ok(line) => {
                    println!("RESULT {line}");
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        _ => {
            eprintln!(
                "usage: mqtt-sync-bench run [--smoke] [--rounds N] [--out FILE] | sink port=P | \
                 client <mqtt-sync|rumqttc|raw> <pub|sub|rtt|idle|many> key=value..."
            );
            2
        }
    };
    std::process::exit(code);
}
