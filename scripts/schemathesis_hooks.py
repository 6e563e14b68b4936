"""Hooks for the schema-driven fuzzer (scripts/openapi-check.sh, scripts/schemathesis.toml)."""

import json
import os
import urllib.request

import schemathesis

# tus chunks (PATCH /api/v1/uploads/{id}) are raw bytes, sent as such.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


# The fuzzer is the demo admin. It may legitimately end its own token (rotating and retiring the
# signing key does), so it signs in again every few seconds instead of holding one token.
@schemathesis.auth(refresh_interval=3)
class DemoAdmin:
    def get(self, case, ctx):
        req = urllib.request.Request(
            os.environ["BANGBAN_ST_BASE"] + "/api/v1/auth/login",
            data=json.dumps({"username": "admin", "password": "bangban-demo"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["access_token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# Real identifiers for the operations that take one in their path. Without them every generated
# id is unknown and those operations only ever answer 404. Before the run, the demo admin
# creates one of each thing the demo data lacks (a work order, a problem, a home visit, an
# inspection with a photo, an appointment booked at a kiosk) and lists the demo terminals; `before_load_schema` then gives those ids
# as the path parameter's examples, so the examples phase runs each such operation on a thing
# that exists (the other phases still generate ids too: unknown ones must stay 404).
def _call(method, path, token=None, body=None, raw=None, content_type="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(os.environ["BANGBAN_ST_BASE"] + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", content_type)
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read()
        return json.loads(text) if text else None


def _png():
    """A 1×1 PNG, made here (the server checks an image by its content)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff")) + chunk(b"IEND", b""))


def _seed():
    token = DemoAdmin().get(None, None)
    me = _call("GET", "/api/v1/me", token)
    point = _call("GET", "/api/v1/points", token)[0]["id"]
    item = _call("GET", "/api/v1/items", token)[0]["id"]
    order = _call("POST", "/api/v1/orders", token, {
        "source": "hotline_12345", "summary": "schemathesis", "deadline": {"class": "five_days"},
        "point_id": point, "item_id": item})["id"]
    problem = _call("POST", "/api/v1/problems", token,
                    {"source": "spot_check", "description": "schemathesis", "owner": "schemathesis"})["id"]
    visit = _call("POST", "/api/v1/home-visits", token, {
        "source": "hotline_12345", "situation": "schemathesis", "address": "schemathesis",
        "point_id": point})["id"]
    items = ["terminal", "screens", "camera", "microphone", "scanner", "printer", "network", "notices",
             "cleanliness"]
    record = _call("POST", f"/api/v1/points/{point}/inspections", token,
                   {"checklist": [{"item": i, "ok": True} for i in items]})["id"]
    photo = _call("POST", f"/api/v1/inspections/{record}/photos", token, raw=_png(),
                  content_type="application/octet-stream")["id"]
    terminals = [t["id"] for t in _call("GET", "/api/v1/terminals", token)]
    users = [u["id"] for u in _call("GET", "/api/v1/users", token) if u["id"] != me["id"]]
    ids = {
        "/api/v1/orders/{id}": [order], "/api/v1/orders/{id}/contact": [order],
        "/api/v1/orders/{id}/contact/reveal": [order], "/api/v1/orders/{id}/steps": [order],
        "/api/v1/problems/{id}/steps": [problem], "/api/v1/home-visits/{id}/steps": [visit],
        "/api/v1/inspections/{id}/photos": [record], "/api/v1/inspection-photos/{id}": [photo],
        "/api/v1/terminals/{id}/enrollment-code": terminals, "/api/v1/terminals/{id}/revoke": terminals,
        "/api/v1/users/{id}": users,
    }
    # An appointment: the item's line gets a duty roster (slots), the staff member's terminal a
    # new enrolment code (its device token), and staff1 vouches for the booking.
    first = _call("GET", "/api/v1/items", token)[0]
    _call("PUT", f"/api/v1/lines/{first['line_id']}/roster", token, {
        "weekly": [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "open": "00:00", "close": "24:00"}],
        "closures": [], "holiday_rule": "follow_calendar"})
    staff = _call("POST", "/api/v1/auth/login", None, {"username": "staff1", "password": "bangban-demo"})
    terminal = next(t for t in _call("GET", "/api/v1/terminals", token)
                    if t["point_id"] == staff["user"]["point_id"])
    code = _call("POST", f"/api/v1/terminals/{terminal['id']}/enrollment-code", token)["enrollment_code"]
    credential = _call("POST", "/api/v1/terminals/enroll", None, {"code": code})["credential"]
    device = _call("POST", "/api/v1/terminals/token", None, {"credential": credential})["access_token"]
    slots = _call("GET", f"/api/v1/terminals/me/appointment-slots?item_id={first['id']}&days=7", device)
    slot = next(s for s in slots if s["free"] > 0)
    ids["/api/v1/appointments/{id}/cancel"] = [_call("POST", "/api/v1/terminals/me/appointments", device, {
        "item_id": first["id"], "slot_start": slot["start"], "name": "王小明", "phone": "13800000000",
        "consent_text": "居民同意", "consent": True, "staff_token": staff["access_token"]})["id"]]
    # Lists that the things above fill (call-back tasks, notifications) give theirs.
    for path, listing in [("/api/v1/callbacks/{id}/result", "/api/v1/callbacks"),
                          ("/api/v1/tasks/{id}/done", "/api/v1/tasks"),
                          ("/api/v1/rectifications/{id}/callback", "/api/v1/rectifications"),
                          ("/api/v1/notifications/{id}/retry", "/api/v1/notifications")]:
        found = _call("GET", listing, token)
        rows = found if isinstance(found, list) else (found or {}).get("items", [])
        if rows:
            ids[path] = [r["id"] for r in rows[:3]]
    return ids


@schemathesis.hook
def before_load_schema(ctx, raw_schema):
    for path, values in _seed().items():
        for op in raw_schema["paths"].get(path, {}).values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                if param.get("in") == "path" and param.get("name") == "id":
                    param["examples"] = {f"existing{n}": {"value": v} for n, v in enumerate(values)}
