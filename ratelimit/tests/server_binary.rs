//! The `ratelimit-server` binary with no configuration: it starts, its built-in policy answers,
//! and SIGTERM stops it cleanly.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringkit_ratelimit::grpc::pb::ringkit::ratelimit::v1 as pb;

/// Kills the child if the test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn starts_with_defaults_answers_and_stops_on_sigterm() {
    let child = Command::new(env!("CARGO_BIN_EXE_ratelimit-server"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server printed its address");
        if line.contains("listening") {
            let addr = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            break addr.to_owned();
        }
    };

    let mut client = pb::rate_limiter_client::RateLimiterClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let r = client
        .check(pb::CheckRequest {
            domain: "default".into(),
            descriptors: vec![pb::Descriptor {
                entries: vec![pb::Entry {
                    key: "key".into(),
                    value: "smoke".into(),
                }],
                cost: None,
            }],
            cost: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, pb::Code::Ok as i32);
    assert_eq!(r.results[0].policy, "100 per 1s burst 200 (token_bucket)");
    drop(client);

    let status = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stopped = None;
    for _ in 0..100 {
        if let Some(s) = guard.0.try_wait().unwrap() {
            stopped = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = stopped.expect("server exits within 10 s of SIGTERM");
    assert!(stopped.success(), "{stopped:?}");
    // The reader thread ends at EOF, which disconnects the channel.
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l.contains("ratelimit-server stopped")),
        "{rest:?}"
    );
}
