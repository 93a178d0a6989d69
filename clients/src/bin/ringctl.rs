//! `ringctl`: call the ringkit services from a shell.
//!
//! ```text
//! ringctl id next --count 3          # three IDs from idgen
//! ringctl id decode 1862...          # timestamp, worker and sequence of an ID
//! ringctl kv put greeting hello      # prints the causal context of the write
//! ringctl kv get greeting            # values (siblings) and the context to write back
//! ringctl rl check default user=alice --cost 1
//! ringctl kv admin ring              # cluster: epoch, claimant, partitions, transfers
//! ringctl kv admin leave node-3      # hand node-3's partitions off, then take it off the ring
//! ```
//!
//! Addresses default to the servers' own defaults on loopback; `--idgen`, `--kv` and
//! `--ratelimit` (or `RINGKIT_IDGEN`, `RINGKIT_KV`, `RINGKIT_RATELIMIT`) point elsewhere.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use ringkit_clients::pb::{idgen::v1 as idgen, kv::v1 as kv, ratelimit::v1 as rl};

#[path = "ringctl/kv_admin.rs"]
mod kv_admin;

#[derive(Parser)]
#[command(
    name = "ringctl",
    version,
    about = "Call the ringkit services from a shell"
)]
struct Cli {
    /// idgen server address.
    #[arg(
        long,
        env = "RINGKIT_IDGEN",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    idgen: String,
    /// ratelimit server address.
    #[arg(
        long,
        env = "RINGKIT_RATELIMIT",
        default_value = "127.0.0.1:50061",
        global = true
    )]
    ratelimit: String,
    /// kv server address.
    #[arg(
        long,
        env = "RINGKIT_KV",
        default_value = "127.0.0.1:50071",
        global = true
    )]
    kv: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Unique IDs.
    #[command(subcommand)]
    Id(IdCommand),
    /// The key-value store.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Rate-limit checks.
    #[command(subcommand)]
    Rl(RlCommand),
}

#[derive(Subcommand)]
enum IdCommand {
    /// Issue IDs.
    Next {
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Split an ID (decimal, base32 or base62 text) into its fields.
    Decode {
        /// The ID.
        id: String,
        /// How the ID is written: decimal, base32 or base62.
        #[arg(long, default_value = "decimal")]
        encoding: String,
    },
    /// The generator's layout, worker and end of life.
    Info,
}

#[derive(Subcommand)]
enum KvCommand {
    /// Read a key: its values (more than one when writes were concurrent) and its context.
    Get {
        /// The key.
        key: String,
    },
    /// Write a value. Pass the context from `get` to replace what you read; without it a value
    /// already there is kept beside yours as a sibling.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The context (hex) from a previous `get`.
        #[arg(long, default_value = "")]
        context: String,
        /// Time to live in milliseconds (0: forever).
        #[arg(long, default_value_t = 0)]
        ttl_ms: u64,
    },
    /// Delete a key (with the context from `get`, to delete exactly what you read).
    Delete {
        /// The key.
        key: String,
        /// The context (hex) from a previous `get`.
        #[arg(long, default_value = "")]
        context: String,
    },
    /// List keys, in key order.
    Scan {
        /// Only keys that start with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many keys.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Node statistics.
    Stats,
    /// Cluster administration: members, ring, owners, handoffs, anti-entropy; join, leave,
    /// remove.
    #[command(subcommand)]
    Admin(kv_admin::KvAdminCommand),
}

#[derive(Subcommand)]
enum RlCommand {
    /// Check (and consume) a descriptor's budget.
    Check {
        /// Policy domain.
        domain: String,
        /// Descriptor entries as key=value (or just key).
        #[arg(required = true)]
        entries: Vec<String>,
        /// Units to consume; 0 only peeks.
        #[arg(long, default_value_t = 1)]
        cost: u64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Id(cmd) => id(&cli.idgen, cmd).await,
        Command::Kv(cmd) => kvc(&cli.kv, cmd).await,
        Command::Rl(cmd) => ratelimit(&cli.ratelimit, cmd).await,
    }
}

async fn channel(addr: &str) -> Result<tonic::transport::Channel> {
    ringkit_clients::connect(addr)
        .await
        .with_context(|| format!("is the server running at {addr}?"))
}

async fn id(addr: &str, cmd: IdCommand) -> Result<()> {
    let mut client = idgen::id_gen_client::IdGenClient::new(channel(addr).await?);
    match cmd {
        IdCommand::Next { count } => {
            let ids = client.next_ids(idgen::NextIdsRequest { count }).await?;
            for id in ids.into_inner().ids {
                println!("{id}");
            }
        }
        IdCommand::Decode { id, encoding } => {
            let encoding = match encoding.as_str() {
                "decimal" => idgen::Encoding::Decimal,
                "base32" => idgen::Encoding::Base32,
                "base62" => idgen::Encoding::Base62,
                other => bail!("unknown encoding `{other}`: use decimal, base32 or base62"),
            };
            let d = client
                .decode(idgen::DecodeRequest {
                    id,
                    encoding: encoding.into(),
                })
                .await?
                .into_inner();
            println!("id        {}", d.decimal);
            println!("timestamp {}", d.timestamp);
            println!("worker    {}", d.worker);
            println!("sequence  {}", d.sequence);
            println!("base32    {}", d.base32);
            println!("base62    {}", d.base62);
        }
        IdCommand::Info => {
            let info = client.info(idgen::InfoRequest {}).await?.into_inner();
            if let Some(l) = &info.layout {
                println!(
                    "layout      {} ({} time / {} worker / {} sequence bits, {} ms ticks)",
                    l.name, l.time_bits, l.worker_bits, l.sequence_bits, l.tick_millis
                );
            }
            println!("worker      {}", info.worker);
            println!("end of life {}", info.end_of_life);
            println!("ids issued  {}", info.ids_issued);
        }
    }
    Ok(())
}

async fn kvc(addr: &str, cmd: KvCommand) -> Result<()> {
    let ch = channel(addr).await?;
    let mut client = kv::kv_client::KvClient::new(ch.clone());
    match cmd {
        KvCommand::Get { key } => {
            let r = client
                .get(kv::GetRequest {
                    key: key.into_bytes().into(),
                    quorum: None,
                })
                .await?
                .into_inner();
            if !r.found {
                println!("(not found)");
            }
            for s in &r.siblings {
                println!("value   {}", String::from_utf8_lossy(&s.value));
            }
            if !r.context.is_empty() {
                println!("context {}", hex(&r.context));
            }
        }
        KvCommand::Put {
            key,
            value,
            context,
            ttl_ms,
        } => {
            let r = client
                .put(kv::PutRequest {
                    key: key.into_bytes().into(),
                    value: value.into_bytes().into(),
                    context: unhex(&context)?.into(),
                    ttl_ms,
                    ..Default::default()
                })
                .await?
                .into_inner();
            println!("siblings {}", r.sibling_count);
            println!("context  {}", hex(&r.context));
        }
        KvCommand::Delete { key, context } => {
            let r = client
                .delete(kv::DeleteRequest {
                    key: key.into_bytes().into(),
                    context: unhex(&context)?.into(),
                    quorum: None,
                })
                .await?
                .into_inner();
            println!("remaining siblings {}", r.remaining_siblings);
        }
        KvCommand::Scan { prefix, limit } => {
            let mut cursor = bytes::Bytes::new();
            let mut left = limit;
            while left > 0 {
                let page = client
                    .scan(kv::ScanRequest {
                        bounds: (!prefix.is_empty())
                            .then(|| kv::scan_request::Bounds::Prefix(prefix.clone().into())),
                        cursor: cursor.clone(),
                        page_size: left.min(1000),
                        keys_only: false,
                        quorum: None,
                    })
                    .await?
                    .into_inner();
                for e in &page.entries {
                    let values: Vec<_> = e
                        .siblings
                        .iter()
                        .map(|s| String::from_utf8_lossy(&s.value).into_owned())
                        .collect();
                    println!(
                        "{}\t{}",
                        String::from_utf8_lossy(&e.key),
                        values.join(" | ")
                    );
                }
                left = left.saturating_sub(u32::try_from(page.entries.len()).unwrap_or(u32::MAX));
                if page.next_cursor.is_empty() {
                    break;
                }
                cursor = page.next_cursor;
            }
        }
        KvCommand::Admin(cmd) => kv_admin::run(ch, cmd).await?,
        KvCommand::Stats => {
            let s = client.stats(kv::StatsRequest {}).await?.into_inner();
            println!("node       {}", s.node_id);
            println!("keys       {}", s.keys);
            println!("tombstones {}", s.tombstones);
            println!("siblings   {}", s.siblings);
            println!("durability {}", s.durability);
            println!("disk bytes {}", s.disk_bytes);
            println!("uptime     {} s", s.uptime_seconds);
        }
    }
    Ok(())
}

async fn ratelimit(addr: &str, cmd: RlCommand) -> Result<()> {
    let mut client = rl::rate_limiter_client::RateLimiterClient::new(channel(addr).await?);
    let RlCommand::Check {
        domain,
        entries,
        cost,
    } = cmd;
    let entries = entries
        .into_iter()
        .map(|e| match e.split_once('=') {
            Some((key, value)) => rl::Entry {
                key: key.to_owned(),
                value: value.to_owned(),
            },
            None => rl::Entry {
                key: e,
                value: String::new(),
            },
        })
        .collect();
    let r = client
        .check(rl::CheckRequest {
            domain,
            descriptors: vec![rl::Descriptor {
                entries,
                cost: None,
            }],
            cost: Some(cost),
        })
        .await?
        .into_inner();
    println!("overall   {:?}", r.overall_code());
    for d in &r.results {
        if let Some(decision) = &d.decision {
            println!(
                "policy    {}{}",
                d.policy,
                if d.shadow { " (shadow)" } else { "" }
            );
            println!("allowed   {}", decision.allowed);
            println!("remaining {} of {}", decision.remaining, decision.limit);
            if let Some(retry) = decision
                .retry_after
                .and_then(|d| Duration::try_from(d).ok())
            {
                println!("retry in  {retry:?}");
            }
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        bail!("a context is hex with an even number of digits, as `get` prints it");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .with_context(|| format!("`{}` is not a hex byte in the context", &text[i..i + 2]))
        })
        .collect()
}
