//! Micro-benchmarks of the sans-IO data model: what every write and read pays before storage.
//!
//! `cargo bench -p ringkit-kv --bench model`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use ringkit_kv::model::{
    ActorId, DotIssuer, LocalWrite, Object, SiblingLimits, Timestamp, WriteMode, decode_context,
    decode_object, encode_context, encode_object, resolve_local_write,
};

/// An object with `n` concurrent siblings of 100-byte values.
fn object_with(n: usize) -> (Object, DotIssuer) {
    let mut issuer = DotIssuer::new(ActorId(7), 0);
    let mut obj: Option<Object> = None;
    for _ in 0..n {
        let w = LocalWrite::Put {
            value: Bytes::from(vec![7u8; 100]),
            context: None,
            expires_at: None,
            mode: WriteMode::Causal,
        };
        let r = resolve_local_write(
            obj.as_ref(),
            w,
            Timestamp(1),
            &mut issuer,
            SiblingLimits::default(),
        );
        obj = r.ok().map(|r| r.object);
    }
    (obj.unwrap_or_default(), issuer)
}

fn bench(c: &mut Criterion) {
    for n in [1, 8] {
        let (obj, issuer) = object_with(n);
        c.bench_function(&format!("put resolving {n} sibling(s)"), |b| {
            b.iter(|| {
                let mut issuer = issuer.clone();
                let w = LocalWrite::Put {
                    value: Bytes::from_static(&[1u8; 100]),
                    context: Some(obj.context().clone()),
                    expires_at: None,
                    mode: WriteMode::Causal,
                };
                black_box(resolve_local_write(
                    Some(&obj),
                    w,
                    Timestamp(2),
                    &mut issuer,
                    SiblingLimits::default(),
                ))
            })
        });
        let other = object_with(n).0;
        c.bench_function(&format!("merge {n} + {n} sibling(s)"), |b| {
            b.iter(|| black_box(obj.merge(&other)))
        });
        let encoded = Bytes::from(encode_object(&obj));
        c.bench_function(&format!("encode object ({n} sibling(s))"), |b| {
            b.iter(|| black_box(encode_object(&obj)))
        });
        c.bench_function(&format!("decode object ({n} sibling(s))"), |b| {
            b.iter(|| black_box(decode_object(&encoded)))
        });
    }
    let (obj, _) = object_with(1);
    let token = encode_context(b"user:42", obj.context());
    c.bench_function("encode context", |b| {
        b.iter(|| black_box(encode_context(b"user:42", obj.context())))
    });
    c.bench_function("decode context", |b| {
        b.iter(|| black_box(decode_context(b"user:42", &token)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
