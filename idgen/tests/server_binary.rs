//! The `idgen-server` binary end to end: starts on 127.0.0.1:0 with a temporary data dir, serves a
//! call, and on SIGTERM drains, exits 0 and leaves the final high-water mark in SQLite.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use ringkit_idgen::{MarkStore, SqliteMarkStore, grpc::pb};

/// Kills the server if the test fails before the clean shutdown, so no process outlives the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn sigterm_drains_and_persists_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_idgen-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
                "--worker-id",
                "17",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    // The listening line carries the bound address: `... addr=127.0.0.1:PORT worker=17 ...`.
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if line.contains("idgen-server listening") {
            let addr = line
                .split("addr=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next());
            break addr
                .expect("the listening line names the address")
                .to_owned();
        }
    };

    let mut client = pb::id_gen_client::IdGenClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let id = client
        .next_id(pb::NextIdRequest {})
        .await
        .unwrap()
        .into_inner()
        .id;
    assert_eq!((id >> 12) & 1023, 17);
    drop(client);

    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut exit = None;
    for _ in 0..200 {
        exit = server.0.try_wait().unwrap();
        if exit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = exit.expect("the server exits within 10 s of SIGTERM");
    assert!(exit.success(), "exit status {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("final high-water mark persisted")),
        "{rest:?}"
    );

    // The mark is one tick past the issued ID: a restart cannot go below it.
    let mark = SqliteMarkStore::open_dir(dir.path())
        .unwrap()
        .load(17)
        .unwrap()
        .unwrap();
    let issued_ms = (id >> 22) + ringkit_idgen::layout::TWITTER_EPOCH_MS;
    assert!(
        mark > issued_ms,
        "mark {mark} must exceed the issued tick {issued_ms}"
    );
    assert!(mark <= issued_ms + 60_000);
}
