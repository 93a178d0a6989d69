//! Calling the `ringkit.idgen.v1` service: starts a server in this process on 127.0.0.1:0, calls
//! NextId, NextIds, StreamIds, Decode and Info, prints the answers and exits.
//!
//! ```sh
//! cargo run -p ringkit-examples --example idgen_grpc
//! ```

use ringkit_idgen::{
    GeneratorConfig, SqliteMarkStore, SystemClock,
    grpc::{IdGenService, pb, serve_listener},
    start,
};
use tokio::{net::TcpListener, sync::oneshot};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The high-water mark lives in SQLite, as in production; a temporary directory here.
    let dir = tempfile::tempdir()?;
    let store = SqliteMarkStore::open_dir(dir.path())?;
    let handle = start(GeneratorConfig::default(), 3, SystemClock, store)?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_listener(
        IdGenService::new(handle.generator()),
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let mut client = pb::id_gen_client::IdGenClient::connect(format!("http://{addr}")).await?;
    let id = client.next_id(pb::NextIdRequest {}).await?.into_inner().id;
    println!("NextId              -> {id}");

    let ids = client
        .next_ids(pb::NextIdsRequest { count: 5 })
        .await?
        .into_inner()
        .ids;
    println!("NextIds(count: 5)   -> {ids:?}");

    let mut stream = client
        .stream_ids(pb::StreamIdsRequest {
            count: 3_000,
            chunk_size: 1_000,
        })
        .await?
        .into_inner();
    let mut chunks = 0;
    while let Some(chunk) = stream.message().await? {
        chunks += 1;
        println!(
            "StreamIds chunk {chunks}   -> {} IDs from {}",
            chunk.ids.len(),
            chunk.ids[0]
        );
    }

    let decoded = client
        .decode(pb::DecodeRequest {
            id: id.to_string(),
            encoding: pb::Encoding::Decimal as i32,
        })
        .await?
        .into_inner();
    println!(
        "Decode({id}) -> issued {} by worker {}, sequence {}; base62 {}, base32 {}",
        decoded.timestamp, decoded.worker, decoded.sequence, decoded.base62, decoded.base32
    );

    let bad = match client.next_ids(pb::NextIdsRequest { count: 0 }).await {
        Ok(_) => anyhow::bail!("the server accepted count 0"),
        Err(status) => status,
    };
    println!("NextIds(count: 0)   -> {:?}: {}", bad.code(), bad.message());

    let info = client.info(pb::InfoRequest {}).await?.into_inner();
    let layout = info.layout.unwrap_or_default();
    println!(
        "Info                -> layout {} ({}+{}+{} bits, {} ms ticks), worker {}, end of life {}, {} IDs issued",
        layout.name,
        layout.time_bits,
        layout.worker_bits,
        layout.sequence_bits,
        layout.tick_millis,
        info.worker,
        info.end_of_life,
        info.ids_issued
    );

    let _ = stop.send(());
    server.await??;
    let mark = handle.shutdown_async().await?;
    println!("shut down; high-water mark {mark} persisted");
    Ok(())
}
