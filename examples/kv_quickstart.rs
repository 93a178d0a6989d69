//! ringkit KV in one minute: start a node in-process on 127.0.0.1:0 with a temporary data
//! directory, then put, get, make siblings, resolve them, delete, and shut down cleanly.
//!
//! Run: `cargo run -p ringkit-examples --example kv_quickstart`

use std::sync::Arc;

use bytes::Bytes;
use ringkit_kv::clock::SystemClock;
use ringkit_kv::grpc::pb::kv_client::KvClient;
use ringkit_kv::grpc::pb::{DeleteRequest, GetRequest, PutRequest};
use ringkit_kv::grpc::serve_listener;
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::{SqliteConfig, SqliteStorage};

fn show(label: &str, r: &ringkit_kv::grpc::pb::GetResponse) {
    let values: Vec<String> = r
        .siblings
        .iter()
        .map(|s| String::from_utf8_lossy(&s.value).into_owned())
        .collect();
    println!(
        "{label:<38} found={} values={values:?} context={} bytes",
        r.found,
        r.context.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The node: SQLite in a temporary directory, served on an ephemeral loopback port.
    let dir = tempfile::tempdir()?;
    let store = SqliteStorage::open(SqliteConfig::new(dir.path(), "quickstart"))?;
    let node = KvNode::new(store, NodeConfig::new("quickstart"), Arc::new(SystemClock))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_listener(node, listener, async {
        let _ = stopped.await;
    }));
    println!("kv node on {addr}, data in {}", dir.path().display());

    let mut kv = KvClient::connect(format!("http://{addr}")).await?;
    let key = Bytes::from_static(b"cart:alice");
    let get = || GetRequest {
        key: key.clone(),
        quorum: None,
    };
    let put = |value: &'static str, context: Bytes| PutRequest {
        key: key.clone(),
        value: Bytes::from_static(value.as_bytes()),
        context,
        ..Default::default()
    };

    // 1. A first write, then a read that returns the value and its causal context.
    kv.put(put("apple", Bytes::new())).await?;
    let first = kv.get(get()).await?.into_inner();
    show("after put(apple):", &first);

    // 2. Two clients write from the same read without seeing each other: both are kept.
    kv.put(put("apple,pear", first.context.clone())).await?;
    kv.put(put("apple,plum", first.context.clone())).await?;
    let conflicted = kv.get(get()).await?.into_inner();
    show("after two concurrent writes:", &conflicted);

    // 3. The application merges the siblings and writes back with the context it read.
    kv.put(put("apple,pear,plum", conflicted.context.clone()))
        .await?;
    let resolved = kv.get(get()).await?.into_inner();
    show("after writing the merge back:", &resolved);

    // 4. Delete with the context: the key is gone (a tombstone remembers what it removed).
    kv.delete(DeleteRequest {
        key: key.clone(),
        context: resolved.context,
        quorum: None,
    })
    .await?;
    show("after delete:", &kv.get(get()).await?.into_inner());

    // Graceful shutdown: in-flight requests finish, the writer drains and syncs.
    let _ = stop.send(());
    server.await??;
    println!("node stopped cleanly");
    Ok(())
}
