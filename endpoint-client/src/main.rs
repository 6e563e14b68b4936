use std::path::PathBuf;

use clap::{Parser, Subcommand};
use endpoint_client::config::Config;

/// 帮办 Bangban terminal program for the service point kiosk.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, env = "BANGBAN_ENDPOINT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Trade the one-time enrollment code for the device credential (stored with mode 0600).
    Enroll {
        #[arg(long)]
        code: String,
    },
    /// Run the terminal service.
    Run,
    /// Decode a call recording to the end and print its duration and streams as JSON (support).
    ProbeRecording { file: std::path::PathBuf },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,webrtc=warn,rtc=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    if let Cmd::ProbeRecording { file } = &cli.cmd {
        let probed = endpoint_client::media::init().and_then(|()| endpoint_client::recording::probe(file));
        return match probed {
            Ok(p) => {
                let streams: Vec<serde_json::Value> = p
                    .streams
                    .iter()
                    .map(|(caps, n)| serde_json::json!({ "caps": caps, "decoded": n }))
                    .collect();
                let ms = p.duration.map(|d| d.as_millis() as u64);
                println!("{}", serde_json::json!({ "duration_ms": ms, "streams": streams }));
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("无法解码录像 (cannot decode the recording): {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("配置错误 (configuration error): {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = endpoint_client::tls::init(cfg.tls_ca_file.as_deref()) {
        eprintln!("配置错误 (configuration error): {e}");
        return std::process::ExitCode::from(2);
    }
    let result = match cli.cmd {
        Cmd::Enroll { code } => endpoint_client::auth::enroll(cfg.http_base(), &code, &cfg.credential_file)
            .await
            .map(|r| {
                println!(
                    "已注册 (enrolled): terminal {} at point {}; credential written to {}",
                    r.terminal_id,
                    r.point_code,
                    cfg.credential_file.display()
                );
            })
            .map_err(anyhow::Error::from),
        Cmd::Run => endpoint_client::app::run(cfg, shutdown_signal()).await,
        Cmd::ProbeRecording { .. } => Ok(()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
