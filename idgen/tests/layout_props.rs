//! Every valid layout round-trips compose and decode, keeps the sign bit clear, and orders IDs of
//! one worker by (tick, sequence).

use proptest::prelude::*;
use ringkit_idgen::{FieldOrder, Id, Layout};

fn valid_layout() -> impl Strategy<Value = Layout> {
    (
        1u32..=63,
        0u32..=32,
        0u32..=32,
        1u64..=10_000,
        0u64..=2_000_000_000_000,
        any::<bool>(),
    )
        .prop_filter_map("must validate", |(t, w, s, tick, epoch, sony)| {
            let layout = Layout {
                name: "custom".into(),
                time_bits: t,
                worker_bits: w,
                sequence_bits: s,
                epoch_ms: epoch,
                tick_ms: tick,
                order: if sony {
                    FieldOrder::SequenceThenWorker
                } else {
                    FieldOrder::WorkerThenSequence
                },
            };
            layout.validate().ok().map(|()| layout)
        })
}

fn fields(layout: &Layout) -> impl Strategy<Value = (u64, u64, u64)> + use<> {
    (
        0..layout.tick_count(),
        0..=layout.max_worker(),
        0..=layout.max_sequence(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn compose_decode_round_trip(
        (layout, (tick, worker, seq), (tick2, seq2)) in valid_layout().prop_flat_map(|l| {
            let f = fields(&l);
            let other = (0..l.tick_count(), 0..=l.max_sequence());
            (Just(l), f, other)
        })
    ) {
        let id = Id::compose(&layout, tick, worker, seq).unwrap();
        prop_assert!(id.as_u64() <= i64::MAX as u64);
        let d = id.decode(&layout).unwrap();
        prop_assert_eq!((d.tick, d.worker, d.sequence), (tick, worker, seq));
        prop_assert_eq!(d.unix_ms, layout.epoch_ms + tick * layout.tick_ms);
        prop_assert_eq!(d.timestamp.timestamp_millis() as u64, d.unix_ms);
        // One worker's IDs order by (tick, sequence), whatever the field order.
        let other = Id::compose(&layout, tick2, worker, seq2).unwrap();
        prop_assert_eq!(id.cmp(&other), (tick, seq).cmp(&(tick2, seq2)));
        // Out-of-range fields are refused rather than spilling into a neighbour.
        prop_assert!(Id::compose(&layout, layout.tick_count(), worker, seq).is_err());
        if layout.worker_bits < 32 {
            prop_assert!(Id::compose(&layout, tick, layout.max_worker() + 1, seq).is_err());
        }
    }
}
