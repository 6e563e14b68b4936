//! A committee staff member signed in at the kiosk helps take a ticket: the operator sees who
//! helped; a token of another point, another role or a forged one is refused and no ticket is
//! taken.

use shared::protocol::{ClientMsg, ErrorCode, Priority, ServerMsg};
use shared::validate::Token;

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id};

fn take(item: uuid::Uuid, staff: Option<&str>) -> ClientMsg {
    ClientMsg::TakeTicket {
        appointment_id: None,
        item_id: item,
        priority: Priority::Elderly,
        resident: None,
        request_id: uuid::Uuid::new_v4(),
        staff_token: staff.map(|t| Token::try_from(t.to_owned()).expect("token")),
        recording_consent: None,
    }
}

#[tokio::test]
async fn the_operator_sees_which_staff_member_helped_and_foreign_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (_, other_device) = app.enroll_terminal(1).await;
    let staff = app.login("staff1").await;
    let operator = app.login("operator2").await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let (mut other, _) = WsClient::connect(&app, &other_device).await;
    let item = item_id(&app, &device, "MZ-001").await;

    // Refused: an operator's token, a forged one, a device token, staff of another point.
    let forged = format!("{}x", &staff[..staff.len() - 1]);
    for (who, token) in
        [("operator", operator.as_str()), ("forged", forged.as_str()), ("device", device.as_str())]
    {
        term.send(&take(item, Some(token))).await;
        let m = term
            .expect("refusal", |m| match m {
                ServerMsg::Error { code, message, .. } => Some((*code, message.clone())),
                ServerMsg::TicketIssued { .. } => Some((ErrorCode::Unknown, "issued".into())),
                _ => None,
            })
            .await;
        assert_eq!(m.0, ErrorCode::Forbidden, "{who}: {m:?}");
        assert!(m.1.contains("工作人员"), "{who}: the kiosk shows why: {}", m.1);
    }
    other.send(&take(item, Some(&staff))).await;
    let m = other
        .expect("refusal", |m| match m {
            ServerMsg::Error { code, message, .. } => Some((*code, message.clone())),
            ServerMsg::TicketIssued { .. } => Some((ErrorCode::Unknown, "issued".into())),
            _ => None,
        })
        .await;
    assert_eq!(m.0, ErrorCode::Forbidden, "staff of another point: {m:?}");
    assert!(m.1.contains("不属于本服务点"), "{}", m.1);

    // Accepted: the ticket names the helper, for the terminal and the operator.
    term.send(&take(item, Some(&staff))).await;
    let ticket = term
        .expect("issued", |m| match m {
            ServerMsg::TicketIssued { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_eq!(ticket.assisted_by.as_deref(), Some("周社工"));
    let rung = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_eq!(rung.ticket_id, ticket.ticket_id, "only the accepted ticket was queued");
    assert_eq!(rung.assisted_by.as_deref(), Some("周社工"));

    // It survives a restart (recovered from the database).
    let app = app.restart().await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (device2, _) = (device.clone(), ());
    let (_term, _) = WsClient::connect(&app, &device2).await;
    let rung = op
        .expect("ringing after restart", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket.clone()),
            _ => None,
        })
        .await;
    assert_eq!(rung.assisted_by.as_deref(), Some("周社工"));

    // A disabled staff account's token no longer helps.
    let admin = app.login("admin").await;
    let (_, users) = app.get("/api/v1/users", Some(&admin)).await;
    let staff_id = users
        .as_array()
        .expect("accounts")
        .iter()
        .find(|u| u["username"] == "staff1")
        .and_then(|u| u["id"].as_str())
        .expect("staff1")
        .to_owned();
    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{staff_id}"),
            Some(&admin),
            Some(serde_json::json!({ "active": false })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (mut term, _) = WsClient::connect(&app, &device2).await;
    term.send(&take(item, Some(&staff))).await;
    term.expect("refused", |m| {
        matches!(m, ServerMsg::Error { code: ErrorCode::Forbidden, .. }).then_some(())
    })
    .await;
}

/// A staff sign-in ends with a password reset: its token no longer admits a resident's ticket
/// at the kiosk, though it has not expired (issue #13 item 2 with item 5).
#[tokio::test]
async fn a_staff_token_from_before_a_password_reset_admits_no_ticket() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let admin = app.login("admin").await;
    let staff = app.login("staff1").await;
    let (s, me) = app.get("/api/v1/me", Some(&staff)).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{me}");
    let id = me["id"].as_str().expect("id").to_owned();
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "MZ-001").await;
    let (s, body) = app
        .post(
            &format!("/api/v1/users/{id}/password"),
            Some(&admin),
            serde_json::json!({ "new_password": "Fresh-pass-42" }),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::NO_CONTENT, "{body}");
    term.send(&take(item, Some(&staff))).await;
    let m = term
        .expect("refusal", |m| match m {
            ServerMsg::Error { code, message, .. } => Some((*code, message.clone())),
            ServerMsg::TicketIssued { .. } => Some((ErrorCode::Unknown, "issued".into())),
            _ => None,
        })
        .await;
    assert_eq!(m.0, ErrorCode::Forbidden, "{m:?}");
    assert!(m.1.contains("工作人员"), "the kiosk shows why: {}", m.1);
}
