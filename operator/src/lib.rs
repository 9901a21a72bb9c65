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

use std::sync::Arc;

use anyhow::Context as _;

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

/// Runs the operator until SIGTERM/SIGINT: health server at once, controllers once leader.
pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
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
    let (leading_tx, leading_rx) = tokio::sync::watch::channel(args.no_leader_election);
    if !args.no_leader_election {
        let lease = leader::LeaseLock::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
        );
        tokio::spawn(lease.run(leading_tx));
    }
    let ctx = Arc::new(controller::Context::new(
        client.clone(),
        metrics,
        Arc::new(master_api::GrpcMasters::new(&args.master_user)),
        &identity,
    ));
    health.set_ready(true);
    let result = controller::run_when_leader(ctx, args.namespace.clone(), leading_rx).await;
    server.abort();
    result
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
