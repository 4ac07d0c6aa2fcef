//! PUBLISH encode/decode micro-benchmarks (`cargo bench --bench codec`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mqtt_sync::codec::{decode, encode_publish};
use mqtt_sync::{Properties, Protocol, QoS};

fn bench(c: &mut Criterion) {
    let topic = "bench/sensors/temperature";
    let props = Properties {
        content_type: Some("application/octet-stream".into()),
        message_expiry_interval: Some(60),
        ..Properties::default()
    };
    for &size in &[16usize, 64, 1024, 65536] {
        let payload = vec![0x5au8; size];
        let mut g = c.benchmark_group(format!("publish_{size}B"));
        g.throughput(Throughput::Bytes(size as u64));
        for (name, protocol, qos, p) in [
            ("v311_qos0", Protocol::V311, QoS::AtMostOnce, None),
            ("v311_qos1", Protocol::V311, QoS::AtLeastOnce, None),
            (
                "v5_qos1_props",
                Protocol::V5,
                QoS::AtLeastOnce,
                Some(&props),
            ),
        ] {
            let pkid = if qos == QoS::AtMostOnce { 0 } else { 7 };
            let mut out = Vec::with_capacity(size + 128);
            g.bench_function(format!("encode/{name}"), |b| {
                b.iter(|| {
                    out.clear();
                    encode_publish(
                        &mut out,
                        protocol,
                        black_box(topic),
                        black_box(&payload),
                        qos,
                        false,
                        false,
                        pkid,
                        p,
                    )
                    .unwrap();
                    black_box(out.len())
                })
            });
            let mut wire = Vec::new();
            encode_publish(
                &mut wire, protocol, topic, &payload, qos, false, false, pkid, p,
            )
            .unwrap();
            g.bench_function(format!("decode/{name}"), |b| {
                b.iter(|| {
                    let r = decode(black_box(&wire), protocol, usize::MAX).unwrap();
                    black_box(r.map(|(_, n)| n))
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
