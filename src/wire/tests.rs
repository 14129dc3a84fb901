//! Unit tests of the wire formats: subjects, starts, commands, replies, events.

use super::*;
use crate::saga::{self, Recorded};
use serde_json::json;

#[test]
fn subjects_and_tokens() {
    let s = Subjects::new("saga");
    assert_eq!(s.start("trip"), "saga.start.trip");
    assert_eq!(s.reply("hotels"), "saga.reply.hotels");
    assert_eq!(s.all("cmd"), "saga.cmd.>");
    assert_eq!(s.commands_for("hotels"), "saga.cmd.hotels.>");
    assert_eq!(s.token("reply", "saga.reply.hotels"), Some("hotels"));
    assert_eq!(s.token("start", "saga.start.trip_booking"), Some("trip_booking"));
    assert_eq!(s.token("reply", "other.reply.hotels"), None);
    assert_eq!(Subjects::new("t1.saga").token("cmd", "t1.saga.cmd.hotels.reserve"), Some("hotels"));
}

#[test]
fn replies_parse_or_are_poison_with_a_reason() {
    let id = "0190a5c4-0000-7000-8000-000000000001";
    let good = json!({"saga_id": id, "step": "hotel", "kind": "action", "attempt": 2, "status": "ok", "output": {"room": 7}});
    let (saga_id, reply) = parse_reply("hotels", good.to_string().as_bytes()).expect("valid");
    assert_eq!(saga_id.to_string(), id);
    assert_eq!((reply.attempt, reply.status, reply.participant.as_str()), (2, ReplyStatus::Ok, "hotels"));
    let cases: [(&[u8], &str); 5] = [
        (b"not json", "not valid JSON"),
        (br#"{"saga_id": "nope", "step": "a", "kind": "action", "attempt": 1, "status": "ok"}"#, "is not a UUID"),
        (
            br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": "a", "kind": "undo", "attempt": 1, "status": "ok"}"#,
            "expected shape",
        ),
        (
            br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": "a", "kind": "action", "status": "ok"}"#,
            "missing field `attempt`",
        ),
        (
            br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": "a", "kind": "action", "attempt": 1, "status": "maybe"}"#,
            "expected shape",
        ),
    ];
    for (bytes, why) in cases {
        let err = parse_reply("hotels", bytes).expect_err("poison");
        assert!(err.reason.contains(why), "{why}: {}", err.reason);
    }
    let big = vec![b' '; MESSAGE_BYTES_MAX + 1];
    assert!(parse_reply("hotels", &big).expect_err("too big").reason.contains("limit"));
    assert!(parse_reply("Bad Name", good.to_string().as_bytes()).is_err());
}

#[test]
fn starts_take_an_optional_id() {
    let start = parse_start("trip", br#"{"input": {"x": 1}}"#).expect("valid");
    assert_eq!((start.saga_id, start.input), (None, json!({"x": 1})));
    let start = parse_start("trip", br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001"}"#).expect("valid");
    assert!(start.saga_id.is_some());
    assert!(parse_start("trip", br#"{"saga_id": 5}"#).is_err());
}

#[test]
fn a_command_round_trips_through_its_body() {
    let id = SagaId::parse("0190a5c4-0000-7000-8000-000000000001").expect("uuid");
    let command = Command {
        saga_id: id,
        saga_type: crate::definition::SagaType::parse("trip").expect("name"),
        step: crate::definition::StepName::parse("hotel").expect("name"),
        participant: Participant::parse("hotels").expect("name"),
        kind: Kind::Compensation,
        action: crate::definition::ActionName::parse("cancel").expect("name"),
        attempt: 3,
        idempotency_key: saga::idempotency_key(id, "hotel", Kind::Compensation),
        message_id: saga::message_id(id, "hotel", Kind::Compensation, 3),
        payload: json!({"input": {}, "results": {}}),
    };
    let body = parse_command(&command_body(&command)).expect("parses");
    assert_eq!((body.kind, body.action.as_str(), body.attempt), (Kind::Compensation, "cancel", 3));
    assert_eq!(Subjects::default().command(&command), "saga.cmd.hotels.cancel");
    let reply = ReplyBody::failed(&body, "no such booking");
    let (_, parsed) = parse_reply("hotels", &reply_body(&reply)).expect("parses");
    assert_eq!((parsed.status, parsed.error.as_deref()), (ReplyStatus::Failed, Some("no such booking")));
    let (_, heartbeat) = parse_reply("hotels", &reply_body(&ReplyBody::working(&body))).expect("parses");
    assert_eq!((heartbeat.status, heartbeat.attempt), (ReplyStatus::Working, 3));
}

#[test]
fn a_working_reply_is_a_heartbeat() {
    let id = "0190a5c4-0000-7000-8000-000000000001";
    let body = json!({"saga_id": id, "step": "hotel", "kind": "action", "attempt": 1, "status": "working"});
    let (_, reply) = parse_reply("hotels", body.to_string().as_bytes()).expect("valid");
    assert_eq!((reply.status, reply.output), (ReplyStatus::Working, None));
}

#[test]
fn events_carry_type_time_and_data() {
    let id = SagaId::parse("0190a5c4-0000-7000-8000-000000000001").expect("uuid");
    let recorded = Recorded { seq: 4, at_ms: 1_767_225_600_123, event: saga::SagaEvent::SagaCompleted {} };
    let body: Value = serde_json::from_slice(&event_body(id, "trip", &recorded)).expect("json");
    assert_eq!(body["type"], "saga_completed");
    assert_eq!(body["at"], "2026-01-01T00:00:00.123Z");
    assert_eq!(body["seq"], 4);
    assert_eq!(event_message_id(id, 4), format!("{id}:4"));
    assert_eq!(traceparent(id, 1).len(), 55);
    let typed: EventBody = serde_json::from_value(body).expect("reads back as an event body");
    assert_eq!((typed.saga_id, typed.saga_type.as_str(), typed.event), (id, "trip", EventEntry::of(&recorded)));
}

#[test]
fn a_nul_character_anywhere_is_refused_at_the_door() {
    assert_eq!(find_nul(&json!({"a": ["x", {"b": "c\u{0}d"}]})), Some("/a/1/b".to_owned()));
    assert_eq!(find_nul(&json!({"k\u{0}": 1})), Some("/k\\u0000".to_owned()));
    assert_eq!(find_nul(&json!("\u{0}")), Some("/".to_owned()));
    assert_eq!(find_nul(&json!({"a": "\\u0000 is only text here"})), None);
    let start = br#"{"input": {"name": "Ada\u0000"}}"#;
    let refusal = parse_start("trip", start).expect_err("a NUL in the input");
    assert!(refusal.reason.contains("NUL character") && refusal.reason.contains("/name"), "{}", refusal.reason);
    let reply = br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": "a", "kind": "action", "attempt": 1, "status": "ok", "output": {"x": "\u0000"}}"#;
    assert!(parse_reply("p", reply).expect_err("a NUL in the output").reason.contains("NUL"));
}

#[test]
fn an_event_too_large_for_the_broker_has_a_stub_that_says_where_to_read_it() {
    let id = SagaId::parse("0190a5c4-0000-7000-8000-000000000001").expect("uuid");
    let recorded = Recorded { seq: 1, at_ms: 1_767_225_600_123, event: saga::SagaEvent::SagaCompensated {} };
    let body: Value = serde_json::from_slice(&omitted_event_body(id, "trip", &recorded, 2_000_000, 1_048_576)).expect("json");
    assert_eq!((body["seq"].as_u64(), body["type"].as_str()), (Some(1), Some("saga_compensated")));
    assert!(body["data"]["omitted"].as_str().is_some_and(|why| why.contains("GET /sagas/")), "{body}");
}

fn nested(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

#[test]
fn input_nesting_is_capped_at_the_door() {
    let deep_enough = json!({ "input": nested(JSON_DEPTH_MAX - 1) });
    assert!(parse_start("trip", deep_enough.to_string().as_bytes()).is_ok(), "{JSON_DEPTH_MAX} levels pass");
    let too_deep = json!({ "input": nested(JSON_DEPTH_MAX + 1) });
    let refused = parse_start("trip", too_deep.to_string().as_bytes()).expect_err("too deep");
    assert!(refused.reason.contains("levels deep"), "{}", refused.reason);
    // Deeper than serde_json's own recursion limit: still a clean refusal, no stack overflow.
    let abyss = format!("{{\"input\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_start("trip", abyss.as_bytes()).is_err());
    let reply = json!({"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": "hotel", "kind": "action",
        "attempt": 1, "status": "ok", "output": nested(JSON_DEPTH_MAX + 1)});
    assert!(parse_reply("hotels", reply.to_string().as_bytes()).expect_err("too deep").reason.contains("levels deep"));
}

#[test]
fn a_reply_step_must_follow_the_name_rules() {
    let reply = |step: &str| {
        json!({"saga_id": "0190a5c4-0000-7000-8000-000000000001", "step": step, "kind": "action", "attempt": 1, "status": "ok"}).to_string()
    };
    assert!(parse_reply("hotels", reply("hotel_2").as_bytes()).is_ok());
    for bad in ["Hotel", "hotel stay", "", "\u{1b}[31mred", &"x".repeat(10_000)] {
        assert!(parse_reply("hotels", reply(bad).as_bytes()).is_err(), "{bad:?} is refused");
    }
}
