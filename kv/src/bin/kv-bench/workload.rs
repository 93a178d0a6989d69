//! YCSB core workloads A, B, C, F and a write-only mix.

/// One operation a worker performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Op {
    /// Get one key.
    Read,
    /// Overwrite one key (blind, last-write-wins by default).
    Update,
    /// Get a key, then write it back with the context read (causal, never a sibling).
    ReadModifyWrite,
}

impl Op {
    /// Label in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Update => "update",
            Op::ReadModifyWrite => "rmw",
        }
    }
}

/// The mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Workload {
    /// 50% read, 50% update (session store).
    A,
    /// 95% read, 5% update (photo tagging).
    B,
    /// 100% read (user profile cache).
    C,
    /// 50% read, 50% read-modify-write (user database).
    F,
    /// 100% update.
    Write,
}

impl Workload {
    /// Picks an operation for a uniform sample `p` in `[0, 1)`.
    pub(crate) fn pick(self, p: f64) -> Op {
        match self {
            Workload::A => {
                if p < 0.5 {
                    Op::Read
                } else {
                    Op::Update
                }
            }
            Workload::B => {
                if p < 0.95 {
                    Op::Read
                } else {
                    Op::Update
                }
            }
            Workload::C => Op::Read,
            Workload::F => {
                if p < 0.5 {
                    Op::Read
                } else {
                    Op::ReadModifyWrite
                }
            }
            Workload::Write => Op::Update,
        }
    }

    /// Label in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::A => "A (50/50 read/update)",
            Workload::B => "B (95/5 read/update)",
            Workload::C => "C (read only)",
            Workload::F => "F (50/50 read/read-modify-write)",
            Workload::Write => "write-only",
        }
    }
}
