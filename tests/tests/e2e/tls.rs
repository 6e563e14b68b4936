//! The terminal reaches the server over TLS (`https://`, `wss://`) through nginx terminating
//! TLS with a certificate from a private CA, as a government deployment does: with the CA in
//! `tls_ca_file` it enrolls, connects, lists the items and is put through to an operator;
//! without it, it refuses the server.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::helpers::*;

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output()?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A private CA and a certificate for `localhost` / 127.0.0.1 signed by it: `(ca.pem, cert, key)`.
fn private_ca(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Bangban Test CA",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    )?;
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    )?;
    Ok((dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key")))
}

/// nginx terminating TLS on a free loopback port and proxying HTTP and WebSocket to `upstream`.
struct Nginx {
    child: std::process::Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(dir: &Path, upstream: std::net::SocketAddr, cert: &Path, key: &Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             client_max_body_size 0;\n\
             server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {};\n  ssl_certificate_key {};\n\
               location / {{\n   proxy_pass http://{upstream};\n   proxy_http_version 1.1;\n\
                proxy_set_header Upgrade $http_upgrade;\n   proxy_set_header Connection \"upgrade\";\n\
                proxy_set_header Host $host;\n   proxy_set_header X-Forwarded-For $remote_addr;\n\
                proxy_read_timeout 300s;\n   proxy_request_buffering off;\n   proxy_buffering off;\n  }}\n }}\n}}\n",
            cert.display(),
            key.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = std::process::Command::new("nginx")
            .args(["-e", "stderr", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .spawn()
            .context("nginx (nginx-light) is installed by scripts/install-system-deps.sh")?;
        Ok(Self { child, port })
    }

    /// Waits until nginx accepts TLS connections (it binds right after parsing its config).
    async fn ready(&mut self) -> Result<()> {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("nginx exited: {st}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > until {
                bail!("nginx did not listen");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await; // polling the condition above
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_talks_to_the_server_over_tls_with_a_private_ca() -> Result<()> {
    init_tracing();
    let tmp = tempfile::tempdir()?;
    let (ca, cert, key) = private_ca(tmp.path())?;
    let server = Server::start().await?;
    let mut nginx = Nginx::start(tmp.path(), server.addr(), &cert, &key)?;
    nginx.ready().await?;
    let url = format!("https://localhost:{}", nginx.port);
    let codes: Vec<_> = server.enrollment.clone();

    // Without the CA the terminal does not trust the server: enrollment fails, nothing is written.
    let untrusting = EndpointOpts { server_url: Some(url.clone()), ..Default::default() };
    let err = match Endpoint::enroll_and_run_with(&server, &codes[1].1, untrusting).await {
        Ok(_) => bail!("enrolled with an untrusted certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.to_lowercase().contains("certificate") || err.contains("证书"), "{err}");

    // With it: enroll over https, signaling over wss, and a call.
    let opts = EndpointOpts { server_url: Some(url), tls_ca_file: Some(ca), ..Default::default() };
    let mut ep = Endpoint::enroll_and_run_with(&server, &codes[0].1, opts).await?;
    let op_token = server.login("operator1").await?;
    let (_op, session, _item) = live_session(&server, &mut ep, &op_token).await?;
    // The items came over https (the kiosk asks the server), the call was set up over wss.
    let status = ep.wait_status("in the call", |s| s["phase"] == "in_call").await?;
    assert_eq!(status["call"]["session_id"], session.session_id.to_string());
    Ok(())
}
