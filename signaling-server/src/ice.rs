//! ICE servers handed to both parties of a session. TURN credentials are minted per session in
//! coturn's REST scheme (`use-auth-secret`): username `expiry:session-id`, password
//! base64(HMAC-SHA1(secret, username)). No public STUN server is ever configured by default:
//! government networks have no internet.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use shared::protocol::IceServer;
use uuid::Uuid;

#[derive(Clone, Default)]
pub struct IceConfig {
    /// e.g. `stun:turn.example.gov.cn:3478` (the deployment's own coturn).
    pub stun_urls: Vec<String>,
    /// e.g. `turn:turn.example.gov.cn:3478?transport=udp`.
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub turn_secret: Option<String>,
    pub turn_ttl_secs: u64,
}

impl std::fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "<redacted>"))
            .field("turn_ttl_secs", &self.turn_ttl_secs)
            .finish()
    }
}

/// coturn REST credential for `session` valid until `now_secs + ttl`.
pub fn turn_credential(secret: &str, session: Uuid, now_secs: i64, ttl_secs: u64) -> (String, String) {
    let expiry = now_secs + i64::try_from(ttl_secs).unwrap_or(86_400);
    let username = format!("{expiry}:{session}");
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(username.as_bytes());
    (username, B64.encode(mac.finalize().into_bytes()))
}

impl IceConfig {
    /// The ICE servers for one session.
    pub fn servers_for(&self, session: Uuid, now_secs: i64) -> Vec<IceServer> {
        let mut out = Vec::new();
        if !self.stun_urls.is_empty() {
            out.push(IceServer { urls: self.stun_urls.clone(), username: None, credential: None });
        }
        if let Some(secret) = &self.turn_secret
            && !self.turn_urls.is_empty()
        {
            let (username, credential) = turn_credential(secret, session, now_secs, self.turn_ttl_secs);
            out.push(IceServer {
                urls: self.turn_urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coturn_rest_credential_matches_the_reference() {
        // Reference computed with: printf '%s' '1700003600:00000000-0000-0000-0000-000000000001' \
        //   | openssl dgst -sha1 -hmac 'north-secret' -binary | base64
        let (u, p) = turn_credential("north-secret", Uuid::from_u128(1), 1_700_000_000, 3600);
        assert_eq!(u, "1700003600:00000000-0000-0000-0000-000000000001");
        assert_eq!(p, "XKnTEnAEOdXxNSrX+/VXYMAYfvY=");
    }

    #[test]
    fn no_servers_unless_configured() {
        assert!(IceConfig::default().servers_for(Uuid::nil(), 0).is_empty());
        let cfg = IceConfig {
            turn_urls: vec!["turn:127.0.0.1:3478".into()],
            turn_secret: None,
            ..Default::default()
        };
        assert!(cfg.servers_for(Uuid::nil(), 0).is_empty(), "TURN without a secret is useless");
    }
}
