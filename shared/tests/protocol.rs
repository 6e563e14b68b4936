//! Wire-protocol tests: every variant round-trips, the examples in docs/protocol.md decode and
//! re-encode to exactly the same JSON, hostile frames fail cleanly, and decoding never panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::protocol::*;
use shared::validate::*;
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0197_b3f0_0000_7000_8000_0000_0000_0000 | n)
}

fn ticket() -> TicketView {
    TicketView {
        ticket_id: id(1),
        number: "J-0012".into(),
        item_id: id(2),
        item_name: "城乡居民基本养老保险待遇申领".into(),
        line_id: id(3),
        line_name: "社保业务".into(),
        point_id: id(4),
        point_name: "枫林街道便民服务站".into(),
        priority: Priority::Elderly,
        resident_name_masked: Some("张*".into()),
        id_number_masked: Some("1101**********002X".into()),
        waited_secs: 12,
        assisted_by: Some("王社工".into()),
    }
}

fn sdp() -> Sdp {
    Sdp::try_from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n").unwrap()
}

fn signals() -> Vec<Signal> {
    vec![
        Signal::Offer { sdp: sdp(), ice_restart: true },
        Signal::Answer { sdp: sdp() },
        Signal::Candidate {
            candidate: IceCandidate::try_from("candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host")
                .unwrap(),
            sdp_mid: Some(SdpMid::try_from("0").unwrap()),
            sdp_m_line_index: Some(0),
        },
        Signal::Candidate {
            candidate: IceCandidate::end_of_candidates(),
            sdp_mid: None,
            sdp_m_line_index: None,
        },
    ]
}

fn client_examples() -> Vec<ClientMsg> {
    let s = id(10);
    let mut v = vec![
        ClientMsg::Hello { v: 1, token: Some(Token::try_from("a.b.c").unwrap()), resume: None },
        ClientMsg::Hello { v: 1, token: None, resume: Some(Token::try_from("rt.x").unwrap()) },
        ClientMsg::Ping { seq: u64::MAX },
        ClientMsg::Renew { token: Token::try_from("a.b.c").unwrap() },
        ClientMsg::TakeTicket {
            appointment_id: None,
            item_id: id(2),
            priority: Priority::Pregnant,
            resident: Some(ResidentDetails {
                name: Some("张三".parse().unwrap()),
                id_number: Some("11010519491231002x".parse().unwrap()),
            }),
            request_id: id(99),
            staff_token: Some(Token::try_from("h.p.s").unwrap()),
            recording_consent: Some(true),
        },
        ClientMsg::TakeTicket {
            appointment_id: None,
            item_id: id(2),
            priority: Priority::Normal,
            resident: None,
            request_id: id(98),
            staff_token: None,
            recording_consent: Some(false),
        },
        ClientMsg::CancelTicket { ticket_id: id(1) },
        ClientMsg::Rate {
            session_id: s,
            level: RatingLevel::Basic,
            comment: Some("还行\n".parse().unwrap()),
        },
        ClientMsg::Rate { session_id: s, level: RatingLevel::VeryDissatisfied, comment: None },
        ClientMsg::SetAvailability { available: false },
        ClientMsg::Accept { ticket_id: id(1) },
        ClientMsg::Decline { ticket_id: id(1) },
        ClientMsg::Pick { ticket_id: id(1) },
        ClientMsg::Hold { session_id: s },
        ClientMsg::Resume { session_id: s },
        ClientMsg::Transfer {
            session_id: s,
            target: TransferTarget::Line { line_id: id(3) },
            note: Some("转医保".parse().unwrap()),
        },
        ClientMsg::Transfer {
            session_id: s,
            target: TransferTarget::Operator { operator_id: id(5) },
            note: None,
        },
        ClientMsg::RequestScan {
            session_id: s,
            slot_id: Some(id(7)),
            note: Some("请扫描正反面".parse().unwrap()),
        },
        ClientMsg::RequestScan { session_id: s, slot_id: None, note: None },
        ClientMsg::EndCall { session_id: s },
        ClientMsg::WrapUp {
            session_id: s,
            outcome: Outcome::NeedsMaterials,
            notes: Some("缺户口本".parse().unwrap()),
        },
    ];
    v.extend(signals().into_iter().map(|signal| ClientMsg::Signal { session_id: s, signal }));
    v.extend(signals().into_iter().map(|signal| ClientMsg::PeerSignal {
        session_id: s,
        peer: id(9),
        signal,
    }));
    for mode in SuperviseMode::ALL {
        v.push(ClientMsg::Supervise { session_id: s, mode });
    }
    v.push(ClientMsg::LeaveSession { session_id: s });
    v.push(ClientMsg::Invite {
        session_id: s,
        target: TransferTarget::Operator { operator_id: id(5) },
        note: None,
    });
    v.push(ClientMsg::Invite {
        session_id: s,
        target: TransferTarget::Line { line_id: id(3) },
        note: Some(Notes::try_from("请协助".to_owned()).expect("note")),
    });
    v.push(ClientMsg::AnswerInvite { session_id: s, accept: false });
    v.push(ClientMsg::TakeOver { session_id: s });
    v.push(ClientMsg::CallSetup { session_id: s, first_frame_ms: 1840 });
    v
}

fn material() -> shared::api::MaterialView {
    shared::api::MaterialView {
        id: id(30),
        session_id: id(10),
        ticket_id: id(1),
        item_id: id(2),
        slot_id: Some(id(31)),
        slot_name: Some("居民身份证".into()),
        source: shared::api::MaterialSource::Scan,
        filename: "身份证.jpg".into(),
        content_type: "image/jpeg".into(),
        size: 123_456,
        sha256: "ab".repeat(32),
        status: shared::api::MaterialStatus::Rejected,
        reject_reason: Some("照片模糊，请重新扫描".into()),
        has_thumbnail: true,
        uploaded_by: id(6),
        created_at: 1_780_000_000_000,
        updated_at: 1_780_000_060_000,
        reviewed_at: Some(1_780_000_060_000),
        archived_at: None,
        purged: false,
    }
}

fn print_job() -> shared::api::PrintJobView {
    shared::api::PrintJobView {
        id: id(40),
        session_id: id(10),
        point_id: id(4),
        terminal_id: id(6),
        operator_id: id(5),
        material_id: id(30),
        filename: "申请表.pdf".into(),
        sha256: "cd".repeat(32),
        size: 2048,
        copies: 1,
        state: shared::api::PrintJobState::Failed,
        reason: Some("media-empty".into()),
        created_at: 1_780_000_000_000,
        updated_at: 1_780_000_030_000,
        expires_at: 1_780_086_400_000,
    }
}

fn server_examples() -> Vec<ServerMsg> {
    let s = id(10);
    let session = SessionView {
        session_id: s,
        ticket: ticket(),
        operator_id: id(5),
        operator_name: "李受理".into(),
        your_part: Party::Terminal,
        polite: true,
        ice_servers: vec![
            IceServer { urls: vec!["stun:stun.example.org:3478".into()], username: None, credential: None },
            IceServer {
                urls: vec!["turn:turn.example.org:3478".into()],
                username: Some("u".into()),
                credential: Some("secret-cred".into()),
            },
        ],
        recording: true,
    };
    let mut v = vec![
        ServerMsg::Welcome {
            v: PROTOCOL_VERSION,
            connection_id: id(20),
            role: Role::Terminal,
            resume_token: Token::try_from("rt.abc").unwrap(),
            heartbeat_secs: HEARTBEAT_SECS,
            resumed: true,
        },
        ServerMsg::Pong { seq: 7 },
        ServerMsg::Renewed { expires_at: 1_796_000_000 },
        ServerMsg::error(ErrorCode::Conflict, "已被接听 (taken)", Some("accept")),
        ServerMsg::error(ErrorCode::Internal, "内部错误 (internal error)", None),
        ServerMsg::Bye { reason: ByeReason::AuthExpired },
        ServerMsg::TicketIssued { ticket: ticket(), request_id: id(99) },
        ServerMsg::QueuePosition {
            ticket_id: id(1),
            position: 1,
            estimated_wait_secs: 0,
            serving: None,
            wait: None,
        },
        ServerMsg::QueuePosition {
            ticket_id: id(1),
            position: 2,
            estimated_wait_secs: 600,
            serving: Some(1),
            wait: Some(shared::protocol::WaitRange { min_secs: 300, max_secs: 600 }),
        },
        ServerMsg::QueuePosition {
            ticket_id: id(1),
            position: 2,
            estimated_wait_secs: 600,
            serving: Some(0),
            wait: None,
        },
        ServerMsg::error(
            ErrorCode::OutsideHours,
            "本服务点现在不开放，下次开放：12月7日（周一）09:00",
            Some("take_ticket"),
        ),
        ServerMsg::TicketClosed { ticket_id: id(1), reason: TicketCloseReason::Abandoned },
        ServerMsg::Ringing { ticket: ticket(), expires_in_ms: 20_000, transfer: None },
        ServerMsg::Ringing {
            ticket: TicketView { resident_name_masked: None, id_number_masked: None, ..ticket() },
            expires_in_ms: 1,
            transfer: Some(TransferContext {
                from_operator: Some("王".into()),
                note: Some("注意".parse().unwrap()),
            }),
        },
        ServerMsg::RingCancelled { ticket_id: id(1), reason: RingCancelReason::TakenByOther },
        ServerMsg::OperatorStatus { state: OperatorStateView::WrapUp },
        ServerMsg::SessionStarted { session },
        ServerMsg::SessionHeld { session_id: s },
        ServerMsg::SessionResumed { session_id: s },
        ServerMsg::PeerDisconnected { session_id: s, grace_secs: 60 },
        ServerMsg::PeerReconnected { session_id: s },
        ServerMsg::Transferring { session_id: s, target_line: Some(id(3)) },
        ServerMsg::Transferring { session_id: s, target_line: None },
        ServerMsg::SessionEnded { session_id: s, reason: SessionEndReason::ConnectionLost },
        ServerMsg::RateRequest { session_id: s },
        ServerMsg::RatingRecorded { session_id: s },
        ServerMsg::Board {
            lines: vec![LineBoard {
                line_id: id(3),
                line_name: "社保业务".into(),
                waiting: 4,
                priority_waiting: 1,
                longest_wait_secs: 300,
                next: vec![BoardTicket {
                    ticket_id: id(1),
                    number: "J-0012".into(),
                    item_name: "城乡居民基本养老保险待遇申领".into(),
                    priority: Priority::Elderly,
                    waited_secs: 300,
                }],
            }],
            operators: vec![OperatorBoardEntry {
                operator_id: id(5),
                name: "李受理".into(),
                state: OperatorStateView::InCall,
                session_id: Some(s),
            }],
        },
        ServerMsg::Board { lines: vec![], operators: vec![] },
        ServerMsg::MaterialChanged { session_id: s, material: material() },
        ServerMsg::ScanRequested {
            session_id: s,
            slot_id: Some(id(7)),
            slot_name: Some("居民身份证".into()),
            note: Some("请扫描正反面".into()),
        },
        ServerMsg::ScanRequested { session_id: s, slot_id: None, slot_name: None, note: None },
        ServerMsg::PrintJobChanged { job: print_job() },
        ServerMsg::TerminalAlarm {
            alarm: shared::api::TerminalAlarmView {
                id: Uuid::from_u128(41),
                terminal_id: Uuid::from_u128(42),
                terminal_name: "华山居委会一体机 1 号".into(),
                point_name: "华山居委会静邻帮办点".into(),
                kind: shared::api::AlarmKind::PrinterFault,
                opened_at: 1_780_000_000_000,
                cleared_at: Some(1_780_000_060_000),
                detail: "media-empty-error".into(),
            },
        },
    ];
    v.extend(signals().into_iter().map(|signal| ServerMsg::Signal {
        session_id: s,
        from: Party::Operator,
        signal,
    }));
    v.extend(signals().into_iter().map(|signal| ServerMsg::PeerSignal {
        session_id: s,
        peer: id(8),
        signal,
    }));
    v.push(ServerMsg::Participants {
        session_id: s,
        participants: vec![
            ParticipantView {
                participant_id: id(9),
                role: ParticipantRole::Terminal,
                name: "华山".into(),
                mode: None,
            },
            ParticipantView {
                participant_id: id(8),
                role: ParticipantRole::Supervisor,
                name: "张主管".into(),
                mode: Some(SuperviseMode::Whisper),
            },
        ],
    });
    v.push(ServerMsg::Invited {
        session_id: s,
        ticket: ticket(),
        from_operator: "李受理".into(),
        note: None,
        ice_servers: vec![],
    });
    v.push(ServerMsg::InviteDeclined { session_id: s, operator_id: id(5) });
    for mode in SuperviseMode::ALL {
        v.push(ServerMsg::Supervising { session_id: s, ticket: ticket(), mode, ice_servers: vec![] });
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Round trips and kinds

#[test]
fn every_client_variant_round_trips() {
    let examples = client_examples();
    let mut seen = BTreeSet::new();
    for m in &examples {
        let text = m.encode();
        let back = ClientMsg::decode(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&back, m, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], m.kind(), "{text}");
        seen.insert(m.kind());
    }
    let all: BTreeSet<_> = ClientMsg::KINDS.iter().copied().collect();
    assert_eq!(seen, all, "every ClientMsg variant has an example");
    assert_eq!(ClientMsg::KINDS.len(), all.len(), "no duplicate kinds");
}

#[test]
fn every_server_variant_round_trips() {
    let examples = server_examples();
    let mut seen = BTreeSet::new();
    for m in &examples {
        let text = m.encode_bounded().unwrap();
        let back = ServerMsg::decode(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&back, m, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], m.kind(), "{text}");
        seen.insert(m.kind());
    }
    let all: BTreeSet<_> = ServerMsg::KINDS.iter().copied().collect();
    assert_eq!(seen, all, "every ServerMsg variant has an example");
    assert_eq!(ServerMsg::KINDS.len(), all.len(), "no duplicate kinds");
}

#[test]
fn wire_shapes() {
    // Exact JSON for a few messages, independent of the docs.
    assert_eq!(ClientMsg::Ping { seq: 3 }.encode(), r#"{"type":"ping","seq":3}"#);
    assert_eq!(
        ClientMsg::Transfer {
            session_id: Uuid::nil(),
            target: TransferTarget::Operator { operator_id: Uuid::nil() },
            note: None
        }
        .encode(),
        r#"{"type":"transfer","session_id":"00000000-0000-0000-0000-000000000000","target":{"kind":"operator","operator_id":"00000000-0000-0000-0000-000000000000"}}"#
    );
    assert_eq!(
        ServerMsg::Bye { reason: ByeReason::SlowConsumer }.encode(),
        r#"{"type":"bye","reason":"slow_consumer"}"#
    );
    // Optional fields: omitted on output, `null` and absence both accepted on input.
    let with_null = r#"{"type":"hello","v":1,"token":null,"resume":null}"#;
    assert_eq!(ClientMsg::decode(with_null.as_bytes()).unwrap().encode(), r#"{"type":"hello","v":1}"#);
    // Defaults: priority normal, ice_restart false.
    let m = ClientMsg::decode(
        br#"{"type":"take_ticket","item_id":"00000000-0000-0000-0000-000000000001","request_id":"00000000-0000-0000-0000-000000000002"}"#,
    )
    .unwrap();
    assert!(matches!(m, ClientMsg::TakeTicket { priority: Priority::Normal, resident: None, .. }));
    let m = ClientMsg::decode(
        br#"{"type":"signal","session_id":"00000000-0000-0000-0000-000000000001","signal":{"kind":"offer","sdp":"v=0"}}"#,
    )
    .unwrap();
    assert!(matches!(m, ClientMsg::Signal { signal: Signal::Offer { ice_restart: false, .. }, .. }));
    assert_eq!(m.session_id(), Some(Uuid::from_u128(1)));
}

#[test]
fn enum_helpers() {
    assert_eq!(RatingLevel::VerySatisfied.label_zh(), "非常满意");
    assert_eq!(RatingLevel::Satisfied.label_zh(), "满意");
    assert_eq!(RatingLevel::Basic.label_zh(), "基本满意");
    assert_eq!(RatingLevel::Dissatisfied.label_zh(), "不满意");
    assert_eq!(RatingLevel::VeryDissatisfied.label_zh(), "非常不满意");
    assert!(!RatingLevel::Basic.is_negative());
    assert!(RatingLevel::Dissatisfied.is_negative() && RatingLevel::VeryDissatisfied.is_negative());
    assert_eq!(Outcome::Completed.label_zh(), "办结");
    assert_eq!(Outcome::AcceptedPendingApproval.label_zh(), "已受理待审批");
    assert_eq!(Outcome::NeedsMaterials.label_zh(), "需补材料");
    assert_eq!(Outcome::ReferredOffline.label_zh(), "转线下办理");
    assert_eq!(Outcome::Rejected.label_zh(), "不予受理");
    for r in Role::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
    assert_eq!(Role::Supervisor.to_string(), "supervisor");
}

// ---------------------------------------------------------------------------------------------
// Docs

/// `(direction, json)` for every ```` ```json client ```` / ```` ```json server ```` block.
fn doc_examples() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        let t = line.trim();
        match current.as_mut() {
            None => {
                if let Some(info) = t.strip_prefix("```json") {
                    let dir = info.trim();
                    assert!(
                        dir == "client" || dir == "server" || dir.is_empty(),
                        "unknown block tag {dir:?}"
                    );
                    current = Some((dir.to_owned(), String::new()));
                }
            }
            Some((_, body)) => {
                if t == "```" {
                    out.push(current.take().unwrap());
                } else {
                    body.push_str(t);
                    body.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "unterminated code block");
    out
}

#[test]
fn docs_examples_are_exact_and_complete() {
    let examples = doc_examples();
    assert!(examples.len() > 30, "found only {} examples", examples.len());
    let (mut client, mut server) = (BTreeSet::new(), BTreeSet::new());
    for (dir, body) in &examples {
        let doc_value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON: {e}\n{body}"));
        let reencoded = match dir.as_str() {
            "client" => {
                let m = ClientMsg::decode(body.trim().as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
                client.insert(m.kind());
                m.encode()
            }
            "server" => {
                let m = ServerMsg::decode(body.trim().as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
                server.insert(m.kind());
                m.encode()
            }
            _ => continue,
        };
        let back: Value = serde_json::from_str(&reencoded).unwrap();
        assert_eq!(back, doc_value, "docs example does not re-encode identically:\n{body}");
    }
    let missing_c: Vec<_> = ClientMsg::KINDS.iter().filter(|k| !client.contains(*k)).collect();
    let missing_s: Vec<_> = ServerMsg::KINDS.iter().filter(|k| !server.contains(*k)).collect();
    assert!(missing_c.is_empty(), "client messages without a docs example: {missing_c:?}");
    assert!(missing_s.is_empty(), "server messages without a docs example: {missing_s:?}");
}

#[test]
fn docs_state_the_constants() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).unwrap();
    assert!(doc.contains(&format!("`{SUBPROTOCOL}`")));
    assert!(doc.contains(&format!("every `heartbeat_secs` ({HEARTBEAT_SECS} s)")));
    assert!(doc.contains(&format!("for {IDLE_TIMEOUT_SECS} s")));
    assert!(doc.contains(&format!("**{RESUME_WINDOW_SECS} s**")));
    assert!(doc.contains(&format!("({MAX_FRAME_BYTES} bytes)")));
    for k in ClientMsg::KINDS.iter().chain(ServerMsg::KINDS) {
        assert!(doc.contains(&format!("`{k}`")), "docs never mention `{k}`");
    }
}

// ---------------------------------------------------------------------------------------------
// Schema

#[test]
fn json_schema_covers_both_directions() {
    let schema = json_schema();
    assert_eq!(schema["x-subprotocol"], SUBPROTOCOL);
    assert_eq!(schema["x-protocol-version"], PROTOCOL_VERSION);
    let defs = schema["$defs"].as_object().expect("$defs");
    for (name, kinds) in [("ClientMsg", ClientMsg::KINDS), ("ServerMsg", ServerMsg::KINDS)] {
        let variants = defs[name]["oneOf"].as_array().unwrap_or_else(|| panic!("{name} oneOf"));
        let consts: Vec<&str> =
            variants.iter().map(|v| v["properties"]["type"]["const"].as_str().expect("type const")).collect();
        assert_eq!(consts, kinds, "{name} KINDS out of sync with the enum");
        for v in variants {
            let strict = v.get("additionalProperties") == Some(&json!(false));
            assert_eq!(strict, name == "ClientMsg", "{name} {}", v["properties"]["type"]["const"]);
        }
    }
    // Constraints from the validated newtypes reach the schema.
    assert_eq!(defs["Notes"]["maxLength"], 2000);
    assert_eq!(defs["Token"]["maxLength"], 4096);
    assert_eq!(defs["IdNumber"]["pattern"], "^[0-9]{17}[0-9Xx]$");
    assert_eq!(defs["TicketView"]["properties"]["ticket_id"]["format"], "uuid");
    // Serialisable, i.e. servable as-is.
    assert!(serde_json::to_string(&schema).unwrap().len() > 1000);
}

// ---------------------------------------------------------------------------------------------
// Hostile input

#[test]
fn unknown_type_is_reported_as_such() {
    let e = ClientMsg::decode(br#"{"type":"format_disk","seq":1}"#).unwrap_err();
    assert_eq!(e, DecodeError::UnknownType { msg_type: "format_disk".into() });
    assert_eq!(e.code(), ErrorCode::BadMessage);
    // A server message sent by a client is unknown too, and vice versa.
    assert!(matches!(ClientMsg::decode(br#"{"type":"pong","seq":1}"#), Err(DecodeError::UnknownType { .. })));
    assert!(matches!(ServerMsg::decode(br#"{"type":"ping","seq":1}"#), Err(DecodeError::UnknownType { .. })));
    // Newer server messages: clients skip them.
    assert!(matches!(
        ServerMsg::decode(br#"{"type":"queue_announcement","text":"x"}"#),
        Err(DecodeError::UnknownType { .. })
    ));
    // Huge type names are truncated in the error.
    let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(10_000));
    let e = ClientMsg::decode(long.as_bytes()).unwrap_err();
    assert!(e.to_string().len() < 400, "{e}");
}

#[test]
fn unknown_fields_are_rejected_from_clients_at_every_level() {
    let cases = [
        r#"{"type":"ping","seq":1,"admin":true}"#,
        r#"{"type":"hello","v":1,"tokn":"x"}"#,
        r#"{"type":"take_ticket","item_id":"00000000-0000-0000-0000-000000000001","request_id":"00000000-0000-0000-0000-000000000002","resident":{"name":"张三","age":80}}"#,
        r#"{"type":"transfer","session_id":"00000000-0000-0000-0000-000000000001","target":{"kind":"line","line_id":"00000000-0000-0000-0000-000000000001","operator_id":"00000000-0000-0000-0000-000000000001"}}"#,
        r#"{"type":"signal","session_id":"00000000-0000-0000-0000-000000000001","signal":{"kind":"answer","sdp":"v=0","type":"answer"}}"#,
    ];
    for c in cases {
        let e = ClientMsg::decode(c.as_bytes()).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { .. }), "{c}: {e:?}");
        assert!(e.to_string().contains("unknown field"), "{c}: {e}");
        assert!(e.msg_type().is_some());
    }
}

#[test]
fn server_messages_are_read_tolerantly() {
    let m = ServerMsg::decode(br#"{"type":"pong","seq":1,"server_time":123}"#).unwrap();
    assert_eq!(m, ServerMsg::Pong { seq: 1 });
    let m = ServerMsg::decode(br#"{"type":"error","code":"quota_exceeded","message":"x"}"#).unwrap();
    assert!(matches!(m, ServerMsg::Error { code: ErrorCode::Unknown, .. }));
    let m = ServerMsg::decode(br#"{"type":"bye","reason":"maintenance"}"#).unwrap();
    assert_eq!(m, ServerMsg::Bye { reason: ByeReason::Unknown });
}

#[test]
fn wrong_types_and_missing_fields() {
    let cases = [
        r#"{"type":"ping","seq":"1"}"#,
        r#"{"type":"ping","seq":-1}"#,
        r#"{"type":"ping","seq":1.5}"#,
        r#"{"type":"ping","seq":18446744073709551616}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"hello","v":65536}"#,
        r#"{"type":"accept","ticket_id":"not-a-uuid"}"#,
        r#"{"type":"accept","ticket_id":null}"#,
        r#"{"type":"set_availability","available":"yes"}"#,
        r#"{"type":"rate","session_id":"00000000-0000-0000-0000-000000000001","level":"meh"}"#,
        r#"{"type":"take_ticket","item_id":"00000000-0000-0000-0000-000000000001","request_id":"00000000-0000-0000-0000-000000000002","priority":"vip"}"#,
        r#"{"type":"signal","session_id":"00000000-0000-0000-0000-000000000001","signal":{"kind":"renegotiate"}}"#,
        r#"{"type":"signal","session_id":"00000000-0000-0000-0000-000000000001","signal":"v=0"}"#,
    ];
    for c in cases {
        let e = ClientMsg::decode(c.as_bytes()).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { msg_type: Some(_), .. }), "{c}: {e:?}");
        let reply = ServerMsg::from_decode_error(&e);
        assert!(
            matches!(&reply, ServerMsg::Error { code: ErrorCode::BadMessage, request: Some(_), .. }),
            "{reply:?}"
        );
    }
    for c in ["42", "null", "\"ping\"", "[]", "{}", r#"{"type":7}"#, r#"{"type":["ping"]}"#] {
        let e = ClientMsg::decode(c.as_bytes()).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { msg_type: None, .. }), "{c}: {e:?}");
    }
}

#[test]
fn validation_failures_decode_as_bad_message_without_echoing_data() {
    let secret_id = "110105194912310029"; // wrong check digit
    let frame = format!(
        r#"{{"type":"take_ticket","item_id":"00000000-0000-0000-0000-000000000001","request_id":"00000000-0000-0000-0000-000000000002","resident":{{"id_number":"{secret_id}"}}}}"#
    );
    let e = ClientMsg::decode(frame.as_bytes()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("身份证号码校验位错误"), "{text}");
    assert!(!text.contains(secret_id) && !format!("{e:?}").contains(secret_id));
    // serde's "invalid type: string ..." messages are redacted too.
    for frame in [
        r#"{"type":"ping","seq":"13812345678"}"#,
        r#"{"type":"rate","session_id":"00000000-0000-0000-0000-000000000001","level":"13812345678"}"#,
        r#"{"type":"rate","session_id":"00000000-0000-0000-0000-000000000001","level":"basic","comment":13812345678}"#,
        r#"{"type":"accept","ticket_id":"13812345678"}"#,
        r#"{"type":"13812345678"}"#,
    ] {
        let e = ClientMsg::decode(frame.as_bytes()).unwrap_err();
        let shown = format!("{e} {:?}", ServerMsg::from_decode_error(&e));
        if frame.contains(r#""type":"13812345678""#) {
            // The unknown type itself is reported (truncated), by design.
            assert!(matches!(e, DecodeError::UnknownType { .. }));
        } else {
            assert!(!shown.contains("13812345678"), "{frame}: {shown}");
        }
    }
    // Hostile text in allowed fields: SQL-looking strings are data, control chars are not.
    let ok = r#"{"type":"rate","session_id":"00000000-0000-0000-0000-000000000001","level":"basic","comment":"'; DROP TABLE ratings; -- <img src=x onerror=alert(1)>"}"#;
    assert!(ClientMsg::decode(ok.as_bytes()).is_ok());
    for bad in [r"a\u0000b", r"a\u001bb", r"\u202egnp.exe", r"a\u2066b"] {
        let f = format!(
            r#"{{"type":"rate","session_id":"00000000-0000-0000-0000-000000000001","level":"basic","comment":"{bad}"}}"#
        );
        assert!(ClientMsg::decode(f.as_bytes()).is_err(), "{bad}");
    }
    let long = format!(
        r#"{{"type":"wrap_up","session_id":"00000000-0000-0000-0000-000000000001","outcome":"completed","notes":"{}"}}"#,
        "办".repeat(2001)
    );
    assert!(ClientMsg::decode(long.as_bytes()).unwrap_err().to_string().contains("备注过长"));
}

#[test]
fn call_setup_times_are_bounded() {
    let frame = |ms: &str| {
        format!(
            r#"{{"type":"call_setup","session_id":"00000000-0000-0000-0000-000000000001","first_frame_ms":{ms}}}"#
        )
    };
    for ok in ["0", "1", "600000"] {
        assert!(matches!(ClientMsg::decode(frame(ok).as_bytes()), Ok(ClientMsg::CallSetup { .. })), "{ok}");
    }
    for bad in ["600001", "4294967296", "-1", "1.5", "\"1000\"", "null"] {
        let e = ClientMsg::decode(frame(bad).as_bytes()).expect_err(bad);
        assert!(
            matches!(ServerMsg::from_decode_error(&e), ServerMsg::Error { code: ErrorCode::BadMessage, .. }),
            "{bad}: {e}"
        );
    }
    let e = ClientMsg::decode(frame("600001").as_bytes()).expect_err("too long").to_string();
    assert!(e.contains("first_frame_ms 不得超过 600000"), "{e}");
}

#[test]
fn debug_output_masks_personal_data_and_secrets() {
    let m = ClientMsg::decode(
        r#"{"type":"take_ticket","item_id":"00000000-0000-0000-0000-000000000001","request_id":"00000000-0000-0000-0000-000000000002","resident":{"name":"张三丰","id_number":"11010519491231002X"}}"#
            .as_bytes(),
    )
    .unwrap();
    let dbg = format!("{m:?}");
    assert!(!dbg.contains("11010519491231002X") && !dbg.contains("张三丰"), "{dbg}");
    assert!(dbg.contains("1101**********002X") && dbg.contains("张**"), "{dbg}");
    let hello =
        ClientMsg::Hello { v: 1, token: Some(Token::try_from("eyJ.secret.sig").unwrap()), resume: None };
    assert!(!format!("{hello:?}").contains("secret"));
    let servers = server_examples();
    let started = servers.iter().find(|m| m.kind() == "session_started").unwrap();
    assert!(!format!("{started:?}").contains("secret-cred"));
    assert_eq!(hello.kind(), "hello");
}

#[test]
fn frame_size_limit_is_enforced_before_parsing() {
    // Exactly at the limit: a valid ping padded with whitespace.
    let head = r#"{"type":"ping","seq":1}"#;
    let mut frame = head.to_owned();
    frame.push_str(&" ".repeat(MAX_FRAME_BYTES - head.len()));
    assert_eq!(frame.len(), MAX_FRAME_BYTES);
    assert!(ClientMsg::decode(frame.as_bytes()).is_ok());
    frame.push(' ');
    let e = ClientMsg::decode(frame.as_bytes()).unwrap_err();
    assert_eq!(e, DecodeError::TooLarge { len: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES });
    assert_eq!(e.code(), ErrorCode::TooLarge);
    // Garbage beyond the limit is refused without being looked at.
    let huge = vec![0xffu8; 10 * MAX_FRAME_BYTES];
    assert!(matches!(ServerMsg::decode(&huge), Err(DecodeError::TooLarge { .. })));

    // The largest SDPs that pass validation still fit in a relayed frame: one at the raw byte
    // limit with realistic line lengths, and one at the escaped limit made of quotes.
    let line = format!("a={}\r\n", "x".repeat(60));
    let mut long_lines = String::from("v=0\r\n");
    while long_lines.len() + line.len() <= Sdp::MAX_BYTES {
        long_lines.push_str(&line);
    }
    let quotes = format!("v=0{}", "\"".repeat((Sdp::MAX_ESCAPED_BYTES - 3) / 2));
    for raw in [long_lines, quotes] {
        let sdp = Sdp::try_from(raw).unwrap();
        let relayed = ServerMsg::Signal {
            session_id: Uuid::max(),
            from: Party::Terminal,
            signal: Signal::Offer { sdp: sdp.clone(), ice_restart: true },
        };
        let text = relayed.encode_bounded().unwrap();
        assert_eq!(ServerMsg::decode(text.as_bytes()), Ok(relayed));
        let sent =
            ClientMsg::Signal { session_id: Uuid::max(), signal: Signal::Offer { sdp, ice_restart: true } };
        assert!(sent.encode_bounded().is_ok());
    }

    // An oversized board is caught before sending.
    let board = ServerMsg::Board {
        lines: (0..2000)
            .map(|i| LineBoard {
                line_id: Uuid::from_u128(i),
                line_name: "一条很长的业务线名称".into(),
                waiting: 1,
                priority_waiting: 0,
                longest_wait_secs: 1,
                next: vec![],
            })
            .collect(),
        operators: vec![],
    };
    assert!(board.encode_bounded().is_err());
}

#[test]
fn non_utf8_and_malformed_json() {
    assert_eq!(ClientMsg::decode(b"\xff\xfe{}").unwrap_err(), DecodeError::NotUtf8);
    assert_eq!(
        ClientMsg::decode(b"{\"type\":\"ping\",\"seq\":1,\"x\":\"\xc3\x28\"}").unwrap_err(),
        DecodeError::NotUtf8
    );
    // Surrogate escapes that do not form a valid character.
    assert!(ClientMsg::decode(br#"{"type":"rate","session_id":"00000000-0000-0000-0000-000000000001","level":"basic","comment":"\ud800"}"#).is_err());
    for bad in [
        "",
        " ",
        "{",
        r#"{"type":"ping","seq":1"#,
        r#"{"type":"ping","seq":1}}"#,
        r#"{"type":"ping","seq":1} x"#,
        "{'type':'ping'}",
        "\u{feff}{}",
    ] {
        let e = ClientMsg::decode(bad.as_bytes()).unwrap_err();
        assert!(matches!(e, DecodeError::Syntax { .. }), "{bad:?}: {e:?}");
        assert_eq!(e.code(), ErrorCode::BadMessage);
    }
}

#[test]
fn deeply_nested_json_fails_cleanly() {
    for depth in [200, 10_000, MAX_FRAME_BYTES / 2 - 100] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(ClientMsg::decode(arrays.as_bytes()).is_err());
        assert!(ServerMsg::decode(arrays.as_bytes()).is_err());
        let in_field =
            format!(r#"{{"type":"ping","seq":1,"x":{}{}}}"#, "{\"a\":".repeat(depth), "}".repeat(depth));
        if in_field.len() <= MAX_FRAME_BYTES {
            assert!(ClientMsg::decode(in_field.as_bytes()).is_err());
            assert!(ServerMsg::decode(in_field.as_bytes()).is_err());
        }
        let in_signal = format!(
            r#"{{"type":"signal","session_id":"00000000-0000-0000-0000-000000000001","signal":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        if in_signal.len() <= MAX_FRAME_BYTES {
            assert!(ClientMsg::decode(in_signal.as_bytes()).is_err());
        }
    }
    // Unclosed nesting right up to the frame limit.
    let open = "[".repeat(MAX_FRAME_BYTES);
    assert!(ClientMsg::decode(open.as_bytes()).is_err());
}

#[test]
fn duplicate_keys_are_rejected() {
    assert!(ClientMsg::decode(br#"{"type":"ping","seq":1,"seq":2}"#).is_err());
    assert!(ClientMsg::decode(br#"{"type":"ping","type":"hello","seq":1}"#).is_err());
}

// ---------------------------------------------------------------------------------------------
// Properties: decoding never panics

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from("v=0\r\n")),
        Just(Value::from("candidate:1 1 udp 1 192.0.2.1 1 typ host")),
        Just(Value::from("11010519491231002X")),
        Just(Value::from("00000000-0000-0000-0000-000000000001")),
        proptest::sample::select(
            ClientMsg::KINDS.iter().chain(ServerMsg::KINDS).copied().collect::<Vec<_>>()
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with a real `type` and fields named like real fields, with arbitrary values.
fn message_like() -> impl Strategy<Value = Value> {
    const FIELDS: &[&str] = &[
        "v",
        "token",
        "resume",
        "seq",
        "item_id",
        "priority",
        "resident",
        "name",
        "id_number",
        "request_id",
        "ticket_id",
        "session_id",
        "level",
        "comment",
        "available",
        "target",
        "kind",
        "line_id",
        "operator_id",
        "note",
        "notes",
        "outcome",
        "signal",
        "sdp",
        "ice_restart",
        "candidate",
        "sdp_mid",
        "sdp_m_line_index",
        "code",
        "message",
        "reason",
        "ticket",
        "session",
        "from",
        "lines",
        "operators",
        "state",
    ];
    let kinds: Vec<&'static str> = ClientMsg::KINDS.iter().chain(ServerMsg::KINDS).copied().collect();
    (
        proptest::sample::select(kinds),
        prop::collection::vec((proptest::sample::select(FIELDS), json_value()), 0..8),
    )
        .prop_map(|(kind, fields)| {
            let mut m = serde_json::Map::new();
            m.insert("type".into(), kind.into());
            for (k, v) in fields {
                m.insert(k.into(), v);
            }
            Value::Object(m)
        })
}

fn check_no_panic_and_round_trip(bytes: &[u8]) {
    if let Ok(m) = ClientMsg::decode(bytes) {
        let text = m.encode();
        if text.len() <= MAX_FRAME_BYTES {
            assert_eq!(ClientMsg::decode(text.as_bytes()).as_ref(), Ok(&m), "{text}");
        }
    }
    if let Ok(m) = ServerMsg::decode(bytes) {
        let text = m.encode();
        if text.len() <= MAX_FRAME_BYTES {
            assert_eq!(ServerMsg::decode(text.as_bytes()).as_ref(), Ok(&m), "{text}");
        }
    }
    for e in [ClientMsg::decode(bytes).err(), ServerMsg::decode(bytes).err()].into_iter().flatten() {
        // Errors are bounded and render.
        assert!(e.to_string().chars().count() < 500, "{e}");
        let _ = ServerMsg::from_decode_error(&e).encode();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_no_panic_and_round_trip(&bytes);
    }

    #[test]
    fn json_ish_strings_never_panic(s in r#"[\[\]{}:,"\\ a-z0-9_.\-]{0,512}"#) {
        check_no_panic_and_round_trip(s.as_bytes());
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        check_no_panic_and_round_trip(v.to_string().as_bytes());
    }

    #[test]
    fn message_shaped_json_never_panics(v in message_like()) {
        check_no_panic_and_round_trip(v.to_string().as_bytes());
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..64,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut frames: Vec<String> = client_examples().iter().map(ClientMsg::encode).collect();
        frames.extend(server_examples().iter().map(ServerMsg::encode));
        let mut bytes = frames[which % frames.len()].clone().into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        check_no_panic_and_round_trip(&bytes);
    }

    #[test]
    fn valid_messages_round_trip_with_arbitrary_text(
        comment in "\\PC{0,500}",
        seq in any::<u64>(),
    ) {
        if let Ok(comment) = Comment::try_from(comment) {
            let m = ClientMsg::Rate { session_id: Uuid::from_u128(u128::from(seq)), level: RatingLevel::Satisfied, comment: Some(comment) };
            prop_assert_eq!(ClientMsg::decode(m.encode().as_bytes()), Ok(m));
        }
        let p = ClientMsg::Ping { seq };
        prop_assert_eq!(ClientMsg::decode(p.encode().as_bytes()), Ok(p));
    }
}
