//! The simulation harness: plumbing that runs the real gRPC code on turmoil's simulated
//! network, the client workload and its history, seeded faults, the runner, and the checkers.

pub(crate) mod checkers;
pub(crate) mod client;
pub(crate) mod clock;
pub(crate) mod cluster;
pub(crate) mod faults;
pub(crate) mod history;
pub(crate) mod net;
pub(crate) mod replicated;
pub(crate) mod runner;
pub(crate) mod udp;
pub(crate) mod workload;

#[cfg(test)]
mod checker_tests;
#[cfg(test)]
mod gossip_check;
