//! The real `kv-server` binary: kill -9 recovery, and settings from a TOML file and the
//! environment.
//!
//! Recovery: the process takes concurrent writes, is killed with SIGKILL mid-stream, and is
//! restarted on the same data directory. Every write it acknowledged before dying must be there
//! afterwards (FULL durability; SQLite's WAL replay does the recovery).

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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kv-server"));
    cmd.args([
        "--node-id",
        "crash-test",
        "--metrics-listen",
        "off",
        "--durability",
        "full",
    ]);
    start_with(cmd, dir)
}

/// Starts a prepared `kv-server` command on an ephemeral port in `dir`.
fn start_with(mut cmd: Command, dir: &Path) -> (ServerProcess, String) {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
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

#[tokio::test]
async fn toml_file_and_environment_are_honoured() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = dir.path().join("kv.toml");
    std::fs::write(
        &config,
        "node_id = \"toml-node\"\nmetrics_listen = \"off\"\nmax_key_bytes = 8\n",
    )
    .unwrap_or_else(|e| panic!("write config: {e}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kv-server"));
    cmd.arg("--config")
        .arg(&config)
        .env("KV_DURABILITY", "normal");
    let (_server, addr) = start_with(cmd, &dir.path().join("data"));
    let mut client = connect(&addr).await;

    let stats = client
        .stats(ringkit_kv::grpc::pb::StatsRequest {})
        .await
        .unwrap_or_else(|e| panic!("stats: {e}"))
        .into_inner();
    assert_eq!(
        (stats.node_id.as_str(), stats.durability.as_str()),
        ("toml-node", "normal")
    );
    let long = PutRequest {
        key: Bytes::from_static(b"123456789"),
        ..Default::default()
    };
    let err = client
        .put(long)
        .await
        .err()
        .unwrap_or_else(|| panic!("9-byte key accepted"));
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("limit of 8 bytes"),
        "{}",
        err.message()
    );
}

#[test]
fn invalid_settings_stop_the_server_with_a_message() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = dir.path().join("kv.toml");
    std::fs::write(&config, "max_siblings = 0\n").unwrap_or_else(|e| panic!("write config: {e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_kv-server"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap_or_else(|e| panic!("run kv-server: {e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("max_siblings must be at least 1"),
        "{stderr}"
    );
}
