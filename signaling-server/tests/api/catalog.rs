use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn admin_manages_lines_items_materials_and_skills() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let (s, line) = app
        .post("/api/v1/lines", Some(&admin), json!({ "code": "HJ", "name": "户籍", "sort_order": 60 }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{line}");
    let (s, item) = app
        .post(
            "/api/v1/items",
            Some(&admin),
            json!({
                "code": "HJ-001", "name": "居住证签注", "line_id": line["id"], "remote_allowed": true,
                "materials": [
                    { "name": "居住证", "transfer": "scan" },
                    { "name": "签注申请表", "transfer": "print_sign", "note": "本人签字" },
                    { "name": "租赁合同原件", "transfer": "courier", "required": false }
                ]
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{item}");
    assert_eq!(item["line_name"], "户籍");
    let ms = item["materials"].as_array().expect("materials");
    assert_eq!(ms.len(), 3);
    assert_eq!((ms[1]["transfer"].as_str(), ms[1]["note"].as_str()), (Some("print_sign"), Some("本人签字")));
    assert_eq!(ms[2]["required"], false);

    let id = item["id"].as_str().expect("id");
    let (s, upd) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/items/{id}"),
            Some(&admin),
            Some(json!({ "remote_allowed": false, "materials": [{ "name": "居住证", "transfer": "scan" }] })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(upd["remote_allowed"], false);
    assert_eq!(upd["materials"].as_array().map(Vec::len), Some(1));

    let (_, search) = app.get("/api/v1/items?q=%E5%B1%85%E4%BD%8F", Some(&admin)).await;
    assert_eq!(search.as_array().map(Vec::len), Some(1), "search by name: {search}");
    let (_, by_line) =
        app.get(&format!("/api/v1/items?line_id={}", line["id"].as_str().expect("l")), Some(&admin)).await;
    assert_eq!(by_line.as_array().map(Vec::len), Some(1));

    // Skills: operator2 now also serves 户籍.
    let (_, users) = app.get("/api/v1/users", Some(&admin)).await;
    let op2 =
        users.as_array().expect("u").iter().find(|u| u["username"] == "operator2").cloned().expect("op2");
    let mut skills: Vec<serde_json::Value> = op2["skills"].as_array().expect("s").clone();
    skills.push(line["id"].clone());
    let (s, upd) = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{}/skills", op2["id"].as_str().expect("id")),
            Some(&admin),
            Some(json!({ "line_ids": skills })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(upd["skills"].as_array().map(Vec::len), Some(4));

    let (s, _) = app
        .post(
            "/api/v1/items",
            Some(&admin),
            json!({ "code": "HJ-002", "name": "x", "line_id": uuid::Uuid::new_v4(), "remote_allowed": true }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown line");
    let (s, _) = app.post("/api/v1/items", Some(&admin), json!({ "code": "HJ-003", "name": "x", "line_id": line["id"], "remote_allowed": true, "materials": [{ "name": "a", "transfer": "teleport" }] })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown transfer mode");
    for a in ["line.create", "item.create", "item.update", "user.skills"] {
        assert_eq!(app.audit(a).await.len(), 1, "{a}");
    }
}

#[tokio::test]
async fn admin_creates_staff_bound_to_a_point() {
    let app = TestApp::spawn().await;
    let admin = app.login("admin").await;
    let point = app.first_point(&admin).await;
    let (s, body) = app.post("/api/v1/users", Some(&admin), json!({ "username": "staff2", "display_name": "吴社工", "role": "staff", "password": "Staff-pass-1" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "staff needs a point: {body}");
    let (s, u) = app.post("/api/v1/users", Some(&admin), json!({ "username": "staff2", "display_name": "吴社工", "role": "staff", "point_id": point["id"], "password": "Staff-pass-1" })).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let token = app
        .post("/api/v1/auth/login", None, json!({ "username": "staff2", "password": "Staff-pass-1" }))
        .await
        .1["access_token"]
        .as_str()
        .expect("t")
        .to_owned();
    let claims =
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&token).expect("decode").claims;
    assert_eq!(claims["point"], point["id"]);
    assert_eq!(claims["role"], "staff");
    let (s, _) = app.post("/api/v1/users", Some(&admin), json!({ "username": "staff2", "display_name": "重复", "role": "operator", "password": "Staff-pass-1" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({ "username": "weak", "display_name": "弱", "role": "operator", "password": "password" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "weak password");
}
