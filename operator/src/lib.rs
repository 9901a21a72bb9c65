//! The Alluvium operator: kube-rs controllers for `Tier`, `Cluster` and `Mount`.
//!
//! Each reconcile is a pipeline: fetch references → validate into a checked value
//! ([`validate`]) → build every owned object with pure functions ([`build`]) → apply them with
//! server-side apply under one field manager ([`apply`]) → update status. Only the two ends do
//! I/O, so the middle is plain, unit-tested code.

pub mod apply;
pub mod build;
pub mod controller;
pub mod leader;
pub mod master_api;
pub mod names;
pub mod telemetry;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{oneshot, watch};

/// Flags of `alluvium operator`.
#[derive(clap::Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Namespace whose Clusters and Mounts to reconcile; all namespaces when unset.
    #[arg(long, env = "ALLUVIUM_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Port of the HTTP server for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "ALLUVIUM_OPERATOR_HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// Name of the Lease used for leader election.
    #[arg(
        long,
        env = "ALLUVIUM_OPERATOR_LEASE",
        default_value = "alluvium-operator"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Run without leader election (one replica only).
    #[arg(long)]
    pub no_leader_election: bool,
    /// User name the operator presents to masters (must be allowed to mount).
    #[arg(long, env = "ALLUVIUM_OPERATOR_USER", default_value = "alluvium")]
    pub master_user: String,
}

/// How long a leader's controllers get, after SIGTERM/SIGINT, to finish the reconciles in flight
/// (within Kubernetes' default 30 s grace period, leaving time to release the lease).
pub const DRAIN: Duration = Duration::from_secs(20);

/// Runs the operator until SIGTERM/SIGINT: health server at once, controllers once leader. On a
/// signal the controllers stop first, then the lease is released, so a standby takes over at once
/// and never while this replica may still write.
pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    // Before anything else, so a signal from here on is a graceful shutdown, not a kill.
    let signal = shutdown_signal().context("cannot listen for SIGTERM")?;
    let client = kube::Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    let metrics = Arc::new(telemetry::Metrics::new());
    let health = telemetry::Health::default();
    let server = tokio::spawn(telemetry::serve(
        args.http_port,
        metrics.clone(),
        health.clone(),
    ));
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("alluvium-operator-{}", std::process::id()));
    let (leading_tx, leading_rx) = watch::channel(args.no_leader_election);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    // Without election the sender stays here, alive until the end: a dropped sender would read
    // as lost leadership.
    let mut unelected = None;
    let elector = if args.no_leader_election {
        unelected = Some(leading_tx);
        None
    } else {
        let lease = leader::LeaseLock::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
        );
        Some(tokio::spawn(lease.run(leading_tx, async move {
            let _ = stop_rx.await;
        })))
    };
    let ctx = Arc::new(controller::Context::new(
        client.clone(),
        metrics,
        Arc::new(master_api::GrpcMasters::new(&args.master_user)),
        &identity,
    ));
    health.set_ready(true);
    let controllers = controller::run_when_leader(ctx, args.namespace.clone(), leading_rx.clone());
    let result = until_shutdown(controllers, leading_rx, signal, DRAIN).await;
    // The controllers are done: only now may the lease go (released if still held).
    let _ = stop_tx.send(());
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    drop(unelected);
    server.abort();
    result
}

/// Completes on the first SIGTERM or SIGINT. The SIGTERM handler is installed now, not at the
/// first poll.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested");
    })
}

/// Runs `controllers` until they end or `signal` comes. A follower then stops at once. A
/// leader's controllers heard the same signal (they shut down on SIGTERM/SIGINT themselves) and
/// get up to `drain` to finish the reconciles in flight, while the lease is still renewed.
pub async fn until_shutdown(
    controllers: impl Future<Output = anyhow::Result<()>>,
    leading: watch::Receiver<bool>,
    signal: impl Future<Output = ()>,
    drain: Duration,
) -> anyhow::Result<()> {
    tokio::pin!(controllers);
    tokio::select! {
        r = &mut controllers => r,
        () = signal => {
            if !*leading.borrow() {
                return Ok(());
            }
            tracing::info!("waiting for the controllers to finish");
            match tokio::time::timeout(drain, controllers).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(?drain, "controllers did not stop in time; shutting down anyway");
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: OperatorArgs,
    }

    /// Building an HTTPS client must find exactly one rustls provider (aws-lc-rs, shared with
    /// opendal elsewhere in the binary): two providers and none chosen panics at this point.
    #[tokio::test]
    async fn https_client_builds_with_one_tls_provider() {
        let kubeconfig: kube::config::Kubeconfig = serde_yaml::from_str(
            r#"
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"#,
        )
        .unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).expect("client with TLS");
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_stops_at_once_on_a_signal() {
        let (_tx, leading) = watch::channel(false);
        let started = tokio::time::Instant::now();
        let r = until_shutdown(
            std::future::pending(),
            leading,
            std::future::ready(()),
            DRAIN,
        )
        .await;
        assert!(r.is_ok());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_lets_its_controllers_finish_before_shutting_down() {
        let (_tx, leading) = watch::channel(true);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let controllers = async move {
            // A reconcile in flight when the signal comes.
            tokio::time::sleep(Duration::from_secs(3)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        };
        until_shutdown(controllers, leading, std::future::ready(()), DRAIN)
            .await
            .unwrap();
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_controllers_hang_leaves_after_the_drain_time() {
        let (_tx, leading) = watch::channel(true);
        let started = tokio::time::Instant::now();
        until_shutdown(
            std::future::pending(),
            leading,
            std::future::ready(()),
            DRAIN,
        )
        .await
        .unwrap();
        assert_eq!(started.elapsed(), DRAIN);
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["operator"]).unwrap();
        assert_eq!(cli.args.http_port, 8080);
        assert_eq!(cli.args.lease_name, "alluvium-operator");
        assert!(!cli.args.no_leader_election);
        let cli = Cli::try_parse_from([
            "operator",
            "--namespace=data",
            "--http-port=9090",
            "--lease-name=x",
            "--no-leader-election",
        ])
        .unwrap();
        assert_eq!(cli.args.namespace.as_deref(), Some("data"));
        assert_eq!(cli.args.http_port, 9090);
        assert!(cli.args.no_leader_election);
    }
}
