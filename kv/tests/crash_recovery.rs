//! Kill -9 recovery: a real `kv-server` process takes concurrent writes, is killed with SIGKILL
//! mid-stream, and is restarted on the same data directory. Every write it acknowledged before
//! dying must be there afterwards (FULL durability; SQLite's WAL replay does the recovery).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use ringkit_kv::grpc::pb::kv_client::KvClient;
use ringkit_kv::grpc::pb::{BatchGetRequest, PutRequest};
use tonic::transport::Channel;

/// Kills the server if the test fails half-way.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kv-server` on an ephemeral port and returns it with its address.
fn start(dir: &Path) -> (ServerProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            "crash-test",
            "--metrics-listen",
            "off",
            "--durability",
            "full",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn kv-server: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("read: {e}"));
    let addr = line
        .trim()
        .strip_prefix("kv-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (ServerProcess(child), addr)
}

async fn connect(addr: &str) -> KvClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("uri: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    KvClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (mut server, addr) = start(dir.path());
    let client = connect(&addr).await;

    // 16 writers, each writing its own keys as fast as acknowledgements come back.
    let acked: Arc<Mutex<Vec<(Bytes, Bytes)>>> = Arc::default();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let mut client = client.clone();
            let acked = Arc::clone(&acked);
            tokio::spawn(async move {
                for i in 0..5_000u32 {
                    let key = Bytes::from(format!("w{w:02}-{i:05}"));
                    let value = Bytes::from(format!("value-{w}-{i}"));
                    let req = PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        ..Default::default()
                    };
                    if client.put(req).await.is_err() {
                        return;
                    }
                    acked
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((key, value));
                }
            })
        })
        .collect();

    // Let a good number of writes land, then kill the server mid-stream.
    for _ in 0..400 {
        if acked.lock().unwrap_or_else(PoisonError::into_inner).len() >= 2_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    server.0.kill().unwrap_or_else(|e| panic!("SIGKILL: {e}"));
    let _ = server.0.wait();
    for w in writers {
        let _ = w.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(PoisonError::into_inner));
    assert!(
        acked.len() >= 100,
        "the server acknowledged only {} writes before the kill",
        acked.len()
    );

    // Restart on the same directory: recovery is just opening it.
    let (_server, addr) = start(dir.path());
    let mut client = connect(&addr).await;
    let mut missing = Vec::new();
    for chunk in acked.chunks(1_000) {
        let keys = chunk.iter().map(|(k, _)| k.clone()).collect();
        let got = client
            .batch_get(BatchGetRequest { keys, quorum: None })
            .await
            .unwrap_or_else(|e| panic!("batch get: {e}"))
            .into_inner();
        for ((key, value), r) in chunk.iter().zip(got.results) {
            if !(r.found && r.siblings.len() == 1 && r.siblings[0].value == *value) {
                missing.push(key.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.first()
    );
    eprintln!(
        "{} acknowledged writes all present after SIGKILL and restart",
        acked.len()
    );
}
