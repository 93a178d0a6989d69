//! `ringkit-local`: every ringkit service on loopback, data in `./data`, until Ctrl-C.
//!
//! ```text
//! cargo run --release -p ringkit-examples --bin ringkit-local            # serve until Ctrl-C
//! cargo run --release -p ringkit-examples --bin ringkit-local -- --check # start, call each, stop
//! ```

use std::path::PathBuf;

use clap::Parser;
use ringkit_examples::local::{LocalConfig, LocalDeployment};

#[derive(Parser)]
#[command(name = "ringkit-local", about = "Run every ringkit service locally")]
struct Args {
    /// Where the services keep their SQLite files.
    #[arg(long, env = "RINGKIT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Call each service once, print what came back, and stop.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let config = LocalConfig {
        data_dir: args.data_dir,
        ..LocalConfig::default()
    };
    let deployment = LocalDeployment::start(config).await?;
    let a = &deployment.addrs;
    println!("ringkit is running (data in {}):", a.data_dir.display());
    println!("  idgen      grpc://{}   ringkit.idgen.v1", a.idgen);
    println!(
        "  ratelimit  grpc://{}   ringkit.ratelimit.v1, envoy.service.ratelimit.v3",
        a.ratelimit
    );
    for (i, addr) in a.kv.iter().enumerate() {
        println!(
            "  kv-{}       grpc://{addr}   ringkit.kv.v1 (cluster of {}: N=3, R=W=2; gossip on udp {addr})",
            i + 1,
            a.kv.len()
        );
    }
    println!();
    for line in deployment.smoke_test().await? {
        println!("  {line}");
    }
    if args.check {
        return deployment.shutdown().await;
    }
    println!();
    println!("Try: cargo run -p ringkit-clients --bin ringctl -- id next --count 3");
    println!("     cargo run -p ringkit-clients --bin ringctl -- kv put greeting hello");
    println!("     cargo run -p ringkit-clients --bin ringctl -- kv admin members");
    println!("Ctrl-C stops every service.");
    tokio::signal::ctrl_c().await?;
    println!("stopping...");
    deployment.shutdown().await
}
