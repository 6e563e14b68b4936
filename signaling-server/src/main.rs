//! `signaling-server`: parses configuration, sets up logging, serves until SIGTERM or Ctrl-C.

use clap::Parser;
use signaling_server::Application;
use signaling_server::config::{Cli, Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    let command = cli.command.take();
    let config = Config::from_cli(cli)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .init(),
    }
    if let Some(command) = command {
        signaling_server::backup::run(&config, command).await?;
        return Ok(());
    }
    let app = Application::build(config.clone()).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "帮办 server listening");
    if !app.demo_enrollment.is_empty() {
        println!(
            "演示终端注册码 (demo terminal enrollment codes), also in {}:",
            config.data_dir.join("demo-enrollment.txt").display()
        );
        for (point, code) in &app.demo_enrollment {
            println!("  {point} {code}");
        }
        println!(
            "控制台 console: http://{addr}/   演示账户 demo accounts: admin / supervisor / operator1 / operator2 / staff1, 密码 password: {}",
            signaling_server::demo::DEMO_PASSWORD
        );
    }
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
