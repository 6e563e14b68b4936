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
    // A panic is logged (with its thread) before the default report; a task's panic does not
    // end the process, but it must never pass unseen.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("unnamed"), "panic: {info}");
        report(info);
    }));
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
        Ok(()) => {
            tracing::info!("terminal stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "terminal stopped on an error");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT, SIGTERM, SIGHUP or SIGQUIT (whose default action would end the process
/// without a word), saying which.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
        ];
        let mut waits = Vec::new();
        for (kind, name) in kinds {
            match signal(kind) {
                Ok(mut s) => waits.push(Box::pin(async move {
                    s.recv().await;
                    name
                })),
                Err(e) => tracing::warn!(signal = name, error = %e, "cannot watch for this signal"),
            }
        }
        if waits.is_empty() {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!(signal = "SIGINT", "stopping");
            return;
        }
        let (name, _, _) = futures_util::future::select_all(waits).await;
        tracing::info!(signal = name, "stopping");
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping (Ctrl-C)");
    }
}
