//! Committee staff signed in at the kiosk stay signed in while they work: their login is renewed
//! before the access token runs out (here a server with 8 s tokens), and a ticket they help take
//! after the first token has expired still carries their name to the operator.

use anyhow::{Context, Result};
use serde_json::json;
use shared::protocol::{ClientMsg, OperatorStateView, ServerMsg};

use crate::helpers::{Endpoint, OperatorWs, Server, init_tracing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_login_outlives_its_first_access_token() -> Result<()> {
    init_tracing();
    let server = Server::start_with(|c| c.access_ttl_secs = 8).await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let mut ep = Endpoint::enroll_and_run(&server, &code).await?;
    ep.wait_status("signaling connected", |s| s["connected"] == true && s["phase"] == "idle").await?;

    ep.post("/api/staff/login", json!({ "username": "staff1", "password": "bangban-demo" })).await?;
    let signed_in = std::time::Instant::now();
    // Renewed at each half-life (3 s of a 6 s usable life): the third renewal comes after the
    // first token's 8 s at the server.
    let s = ep
        .wait_status("the staff login renewed three times", |s| s["staff"]["renewals"].as_u64() >= Some(3))
        .await?;
    assert!(signed_in.elapsed().as_secs() >= 8, "the first token has expired at the server");
    assert!(s["staff"]["name"].as_str().is_some_and(|n| !n.is_empty()), "{s}");
    assert!(s["staff"].get("username").is_none(), "the status shows no username: {s}");

    // A ticket staff help take now is accepted with their name on it.
    let op_token = server.login("operator1").await?;
    let mut op = OperatorWs::connect(&server, &op_token).await?;
    op.send(ClientMsg::SetAvailability { available: true }).await?;
    op.expect("available", |m| {
        matches!(m, ServerMsg::OperatorStatus { state: OperatorStateView::Available }).then_some(())
    })
    .await?;
    let items = ep.get("/api/items").await?;
    let item = items
        .as_array()
        .and_then(|a| a.iter().find(|i| i["line_name"] == "社会保障" && i["remote_allowed"] == true))
        .context("a remote 社会保障 item")?;
    ep.post(
        "/api/ticket",
        json!({ "item_id": item["id"], "resident": { "name": "张三", "id_number": "11010519491231002X" } }),
    )
    .await?;
    let ticket = op
        .expect("ringing", |m| match m {
            ServerMsg::Ringing { ticket, .. } => Some(ticket),
            _ => None,
        })
        .await?;
    assert!(
        ticket.assisted_by.as_deref().is_some_and(|n| n.contains("周")),
        "assisted by staff1: {ticket:?}"
    );
    assert!(ticket.resident_name_masked.is_some(), "the resident's details went with the staff login");
    Ok(())
}
