//! The fold micro-benchmark: µs per event to rebuild a saga's state.
//!
//! `cargo bench --bench fold` (env `ROUNDS`, default 20,000 logs; 2,000
//! under `cargo test --bench fold`). The log is a completed trip_booking
//! saga with step outputs (`saga_started`, then `command_sent` and
//! `step_succeeded` per step, `saga_completed`). Three figures, each over
//! the same log many times with std `Instant`:
//! - `saga::fold` of decoded events (what a cache miss costs once the
//!   events are in memory; issue 10's target is ≤ 2 µs per event);
//! - decoding the stored form (`event_type` + JSON text, as a store hands
//!   it back) then folding: what recovery pays per event besides the read,
//!   both the old way (text → `Value` → event) and with `decode_text`;
//! - the same-run baseline: parsing the JSON text alone (`serde_json`
//!   into a `Value`), the floor of any decoding.

use std::hint::black_box;
use std::time::Instant;

use jetsaga::definition::{Catalog, Kind};
use jetsaga::saga::{decode, decode_text, encode, fold, Recorded, SagaEvent, SagaId, Status};
use serde_json::{json, Value};

/// The allocator the `jetsaga` binary runs with (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TRIP: &str = include_str!("../sagas/trip_booking.toml");

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .unwrap_or_else(|_| if cfg!(debug_assertions) { "2000" } else { "20000" }.to_owned())
        .parse()
        .expect("ROUNDS is a number");
    let catalog = Catalog::from_sources([("trip_booking.toml".to_string(), TRIP.to_string())]).expect("trip_booking");
    let def = catalog.get("trip_booking").expect("trip_booking").clone();
    let id = SagaId::from_u128(0x0190_f000_0000_7000_8000_0000_0000_0001);
    let mut events = vec![SagaEvent::SagaStarted {
        saga_type: "trip_booking".into(),
        version: def.version,
        definition_hash: def.content_hash.clone(),
        input: json!({ "card": "4242", "who": "ada", "from": "LHR", "to": "NRT" }),
        key: None,
    }];
    for (n, step) in def.steps.iter().enumerate() {
        events.push(SagaEvent::CommandSent { step: step.name.clone(), kind: Kind::Action, attempt: 1, deadline_ms: 2_000 + n as i64 });
        events.push(SagaEvent::StepSucceeded {
            step: step.name.clone(),
            kind: Kind::Action,
            attempt: 1,
            output: json!({ "reference": format!("{}-{n}", step.name), "price": 120 + n }),
        });
    }
    events.push(SagaEvent::SagaCompleted {});
    let log: Vec<Recorded> = events.into_iter().zip(1..).map(|(event, seq)| Recorded { seq, at_ms: 1_000 + seq as i64, event }).collect();
    let stored: Vec<(&'static str, String)> = log.iter().map(|r| (encode(&r.event).0, encode(&r.event).1.to_string())).collect();
    assert_eq!(fold(&def, id, &log).map(|s| s.status), Some(Status::Completed));
    let n_events = (rounds * log.len()) as f64;

    let started = Instant::now();
    for _ in 0..rounds {
        black_box(fold(&def, id, black_box(&log)));
    }
    let fold_us = started.elapsed().as_secs_f64() * 1e6 / n_events;

    let started = Instant::now();
    for _ in 0..rounds {
        let decoded: Vec<Recorded> = stored
            .iter()
            .zip(&log)
            .map(|((event_type, data), r)| {
                let value: Value = serde_json::from_str(data).expect("json");
                Recorded { seq: r.seq, at_ms: r.at_ms, event: decode(1, event_type, value).expect("decode") }
            })
            .collect();
        black_box(fold(&def, id, &decoded));
    }
    let decode_fold_us = started.elapsed().as_secs_f64() * 1e6 / n_events;

    let started = Instant::now();
    for _ in 0..rounds {
        let decoded: Vec<Recorded> = stored
            .iter()
            .zip(&log)
            .map(|((event_type, data), r)| Recorded {
                seq: r.seq,
                at_ms: r.at_ms,
                event: decode_text(1, event_type, data).expect("decode"),
            })
            .collect();
        black_box(fold(&def, id, &decoded));
    }
    let text_fold_us = started.elapsed().as_secs_f64() * 1e6 / n_events;

    let started = Instant::now();
    for _ in 0..rounds {
        for (_, data) in &stored {
            black_box(serde_json::from_str::<Value>(black_box(data)).expect("json"));
        }
    }
    let parse_us = started.elapsed().as_secs_f64() * 1e6 / n_events;

    println!("fold of a completed trip_booking log ({} events), {rounds} rounds:", log.len());
    println!("  saga::fold                          {fold_us:>8.3} µs per event  (target ≤ 2 µs, issue 10)");
    println!("  decode via a Value + fold           {decode_fold_us:>8.3} µs per event  (the stores until issue 10)");
    println!("  decode_text + fold                  {text_fold_us:>8.3} µs per event  (the stores now)");
    println!("baseline in this run:");
    println!("  serde_json::from_str into a Value   {parse_us:>8.3} µs per event");
    println!("ratio:");
    println!("  decode_text + fold ÷ JSON parse alone  {:>8.2}", text_fold_us / parse_us);
}
