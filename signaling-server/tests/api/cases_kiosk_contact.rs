//! The resident's phone number recorded at the kiosk (issue 14): the terminal sends it for its
//! ticket with its device token and the signed-in staff member's access token, after the
//! resident confirmed the consent text. Hostile values, a missing consent and missing, foreign
//! or forged staff tokens are refused; the number is stored encrypted, shown masked, reaches the
//! order opened from the call (and one already open), is revealed only by an audited action.
//! The order's outstanding materials come from the item's checklist and show what the call's
//! stored materials already cover.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::protocol::{ClientMsg, ServerMsg};

use crate::helpers::TestApp;
use crate::ws_client::{WsClient, available_operator, item_id, take_assisted_ticket};

const CONSENT: &str = "居民同意帮办通过此电话告知办理进度和回访，办结后按规定期限删除。";

async fn put_contact(app: &TestApp, token: Option<&str>, ticket: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PUT, &format!("/api/v1/terminals/me/tickets/{ticket}/contact"), token, Some(body)).await
}

#[tokio::test]
async fn staff_at_the_kiosk_record_a_consented_phone_that_reaches_the_work_order() {
    let app = TestApp::spawn().await;
    let (_, device) = app.enroll_terminal(0).await;
    let (_, other_device) = app.enroll_terminal(1).await;
    let staff_login = app.login_full("staff1").await;
    let staff = staff_login["access_token"].as_str().expect("token").to_owned();
    let staff_name = staff_login["user"]["display_name"].as_str().expect("name").to_owned();
    let operator = app.login("operator2").await;
    let sup = app.login("supervisor").await;
    let (mut op, _) = available_operator(&app, "operator1").await;
    let (mut term, _) = WsClient::connect(&app, &device).await;
    let item = item_id(&app, &device, "SB-003").await;
    let ticket = take_assisted_ticket(&mut term, item, &staff).await.to_string();
    let good =
        json!({ "phone": "13912345678", "consent_text": CONSENT, "consent": true, "staff_token": staff });

    // Refused: no token, a person's token instead of the terminal's, another terminal, an
    // unknown ticket.
    let (s, _) = put_contact(&app, None, &ticket, good.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = put_contact(&app, Some(&staff), &ticket, good.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the staff member's own token is not a terminal's");
    let (s, _) = put_contact(&app, Some(&other_device), &ticket, good.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another terminal's ticket");
    let (s, _) = put_contact(&app, Some(&device), &uuid::Uuid::new_v4().to_string(), good.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = put_contact(&app, Some(&device), "not-a-uuid", good.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Refused: no staff member vouching, or the wrong one.
    let forged = format!("{}x", &staff[..staff.len() - 1]);
    let mut no_staff = good.clone();
    no_staff.as_object_mut().expect("object").remove("staff_token");
    let (s, e) = put_contact(&app, Some(&device), &ticket, no_staff).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    for (who, token) in
        [("operator", operator.as_str()), ("forged", forged.as_str()), ("device", device.as_str())]
    {
        let mut body = good.clone();
        body["staff_token"] = json!(token);
        let (s, e) = put_contact(&app, Some(&device), &ticket, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {e}");
        assert!(e["error"]["message"].as_str().unwrap_or_default().contains("工作人员"), "{who}: {e}");
    }
    // Staff of another point vouch only at their own point's terminals.
    let (_, points) = app.get("/api/v1/points", Some(&sup)).await;
    let other_point = points
        .as_array()
        .expect("points")
        .iter()
        .find(|p| p["id"] != staff_login["user"]["point_id"])
        .cloned()
        .expect("another point");
    let (s, other_staff) = app
        .post(
            "/api/v1/users",
            Some(&app.login("admin").await),
            json!({ "username": "staff9", "display_name": "吴社工", "role": "staff", "point_id": other_point["id"], "password": "another-long-password" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{other_staff}");
    let (_, l) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "staff9", "password": "another-long-password" }),
        )
        .await;
    let mut body = good.clone();
    body["staff_token"] = l["access_token"].clone();
    let (s, e) = put_contact(&app, Some(&device), &ticket, body).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["error"]["message"].as_str().unwrap_or_default().contains("不属于本服务点"), "{e}");

    // Refused: no consent, hostile phone numbers and consent texts, unknown fields.
    let mut bad_bodies = vec![
        json!({ "phone": "13912345678", "consent_text": CONSENT, "consent": false, "staff_token": staff }),
        json!({ "phone": "13912345678", "consent_text": CONSENT, "staff_token": staff }),
        json!({ "phone": "13912345678", "consent_text": "", "consent": true, "staff_token": staff }),
        json!({ "phone": "13912345678", "consent_text": "同意\u{0007}", "consent": true, "staff_token": staff }),
        json!({ "phone": "13912345678", "consent_text": "同".repeat(501), "consent": true, "staff_token": staff }),
        json!({ "phone": "13912345678", "consent_text": CONSENT, "consent": true, "staff_token": staff, "name": "张三" }),
        json!({ "phone": 13912345678_i64, "consent_text": CONSENT, "consent": true, "staff_token": staff }),
        json!({ "phone": "13912345678", "consent_text": CONSENT, "consent": true, "staff_token": "" }),
        json!({ "phone": "13912345678", "consent_text": CONSENT, "consent": true, "staff_token": "x".repeat(5000) }),
    ];
    for phone in [
        "",
        "12345",
        "1391234567",
        "139123456789",
        "1391234567x",
        "abc-defg",
        "+8613912345678",
        "0-",
        "021--12345678",
        "'; DROP TABLE tickets; --",
        "１３９１２３４５６７８",
        "0".repeat(100).as_str(),
    ] {
        bad_bodies
            .push(json!({ "phone": phone, "consent_text": CONSENT, "consent": true, "staff_token": staff }));
    }
    for bad in bad_bodies {
        let (s, e) = put_contact(&app, Some(&device), &ticket, bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
    }
    let refused = app.audit("ticket.contact").await;
    assert!(
        refused.iter().any(|e| e["outcome"] == "denied"),
        "refused staff tokens are audited: {refused:?}"
    );

    // Accepted: stored masked, recorded by the staff member.
    let (s, v) = put_contact(&app, Some(&device), &ticket, good.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["phone_masked"], "139****5678");
    assert_eq!(v["recorded_by"], staff_name.as_str());
    assert_eq!(v["consent_text"], CONSENT);
    assert_eq!(v["orders"], json!([]), "no order yet");
    let stored: String = sqlx::query_scalar("SELECT phone_enc FROM ticket_contacts WHERE ticket_id = $1")
        .bind(&ticket)
        .fetch_one(&app.state.db.pool)
        .await
        .expect("row");
    assert!(!stored.contains("13912345678"), "encrypted at rest");
    let audit = app.audit("ticket.contact").await;
    let ok = audit.iter().find(|e| e["outcome"] == "success").expect("audited");
    assert_eq!(ok["actor_id"], staff_login["user"]["id"], "the staff member is the actor: {ok}");
    assert!(!ok.to_string().contains("13912345678"), "no number in the audit log");

    // The call: wrapped up as 需补材料, the operator opens the order; it carries the number.
    let ticket_id: uuid::Uuid = ticket.parse().expect("uuid");
    op.expect("ringing", |m| matches!(m, ServerMsg::Ringing { .. }).then_some(())).await;
    op.send(&ClientMsg::Accept { ticket_id }).await;
    let session = op
        .expect("started", |m| match m {
            ServerMsg::SessionStarted { session } => Some(session.session_id),
            _ => None,
        })
        .await;
    // A scan of the checklist's 身份证 is stored during the call (as the materials store does).
    let slot: String =
        sqlx::query_scalar("SELECT id FROM item_materials WHERE item_id = $1 AND name = '身份证'")
            .bind(item.to_string())
            .fetch_one(&app.state.db.pool)
            .await
            .expect("slot");
    for (n, status) in [(1, "accepted"), (2, "rejected")] {
        sqlx::query(
            "INSERT INTO materials (id, session_id, ticket_id, item_id, slot_id, source, filename, content_type, size, \
             sha256, object_name, status, uploaded_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'scan', $6, 'image/jpeg', 10, 'x', NULL, $7, $8, 0, 0)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(session.to_string())
        .bind(&ticket)
        .bind(item.to_string())
        .bind(&slot)
        .bind(format!("扫描件-{n}.jpg"))
        .bind(status)
        .bind("terminal")
        .execute(&app.state.db.pool)
        .await
        .expect("material");
    }
    op.send(&ClientMsg::WrapUp {
        session_id: session,
        outcome: shared::protocol::Outcome::NeedsMaterials,
        notes: None,
    })
    .await;
    term.expect("rate_request", |m| matches!(m, ServerMsg::RateRequest { .. }).then_some(())).await;
    let op1 = app.login("operator1").await;
    // Outstanding materials come from the item's checklist.
    let (s, e) = app
        .post(
            "/api/v1/orders",
            Some(&op1),
            json!({ "source": "wrap_up", "session_id": session, "summary": "需补材料", "deadline": { "class": "five_days" },
                    "outstanding_materials": ["户口簿复印件"] }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap_or_default().contains("身份证"),
        "names the checklist: {e}"
    );
    let (s, order) = app
        .post(
            "/api/v1/orders",
            Some(&op1),
            json!({ "source": "wrap_up", "session_id": session, "summary": "需补材料", "deadline": { "class": "five_days" },
                    "outstanding_materials": ["身份证"] }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{order}");
    assert_eq!(order["phone_masked"], "139****5678", "{order}");
    assert_eq!(order["consent_text"], CONSENT);
    assert!(order["consent_at"].as_i64().is_some());
    assert_eq!(order["materials"].as_array().map(Vec::len), Some(1), "{order}");
    let m = &order["materials"][0];
    assert_eq!(
        (m["name"].as_str(), m["required"].as_bool(), m["outstanding"].as_bool()),
        (Some("身份证"), Some(true), Some(true))
    );
    assert_eq!(m["stored"], 1, "the accepted scan covers it; the rejected one does not: {m}");
    let id = order["id"].as_str().expect("id").to_owned();
    let (_, list) = app.get("/api/v1/orders", Some(&op1)).await;
    let listed =
        list.as_array().expect("list").iter().find(|o| o["id"] == id.as_str()).cloned().expect("listed");
    assert_eq!(listed["materials"], json!([]), "the checklist is only in the single-order view");
    let (s, r) = app.post(&format!("/api/v1/orders/{id}/contact/reveal"), Some(&sup), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["phone"], "13912345678");

    // Recorded again at the kiosk while the order is open: the order gets the new number.
    let mut again = good.clone();
    again["phone"] = json!("021-64381234");
    let (s, v) = put_contact(&app, Some(&device), &ticket, again).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["orders"], json!([id]));
    let (_, o) = app.get(&format!("/api/v1/orders/{id}"), Some(&sup)).await;
    assert_eq!(o["phone_masked"], "021****1234", "{o}");
    let (_, r) = app.post(&format!("/api/v1/orders/{id}/contact/reveal"), Some(&sup), json!({})).await;
    assert_eq!(r["phone"], "021-64381234");

    // A staff member at a point: a name outside the checklist is refused there too.
    let (s, e) = app
        .post(
            "/api/v1/orders",
            Some(&staff),
            json!({ "source": "point", "item_id": item, "summary": "x", "deadline": { "class": "same_day" },
                    "outstanding_materials": ["身份证", "结婚证"] }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
}

#[tokio::test]
async fn the_kiosk_contact_endpoint_is_documented_with_its_limits() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/api/openapi.json", None).await;
    let op = &doc["paths"]["/api/v1/terminals/me/tickets/{id}/contact"]["put"];
    assert!(op.is_object(), "documented");
    for code in ["200", "400", "401", "403", "404", "409", "413", "415", "422"] {
        assert!(op["responses"][code].is_object(), "{code} documented: {op}");
    }
    let req = &doc["components"]["schemas"]["KioskContactRequest"];
    let mut required: Vec<&str> =
        req["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    required.sort_unstable();
    assert_eq!(required, ["consent", "consent_text", "phone", "staff_token"]);
    let props = &req["properties"];
    assert_eq!(
        (props["phone"]["minLength"].as_u64(), props["phone"]["maxLength"].as_u64()),
        (Some(7), Some(16))
    );
    assert_eq!(props["phone"]["pattern"], shared::cases::PHONE_PATTERN);
    assert_eq!(
        (props["consent_text"]["minLength"].as_u64(), props["consent_text"]["maxLength"].as_u64()),
        (Some(1), Some(500))
    );
    assert_eq!(props["consent"]["enum"], json!([true]));
    let token = if props["staff_token"]["$ref"].is_string() {
        &doc["components"]["schemas"]["Token"]
    } else {
        &props["staff_token"]
    };
    assert_eq!(token["maxLength"].as_u64(), Some(4096), "{props}");
    assert!(doc["components"]["schemas"]["OrderMaterial"].is_object());
}
