//! Ring versions spread by gossip: a tiny foca custom broadcast saying "ring epoch E is at node X".
//!
//! Only the version travels (a few dozen bytes piggybacked on SWIM traffic); a member that learns
//! of a newer epoch than it holds pulls the whole ring map from the announcer over gRPC.

use std::sync::{Arc, Mutex, PoisonError};

use crate::NodeId;

/// "The ring at `epoch` can be fetched from `from` at `grpc_addr`."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingAnnouncement {
    /// The ring version announced.
    pub epoch: u64,
    /// The node that holds it (the claimant that made it, or any node that already pulled it).
    pub from: NodeId,
    /// Where `from` serves gRPC, so the map can be pulled before gossip knows `from`.
    pub grpc_addr: String,
}

impl RingAnnouncement {
    /// Wire form: epoch (8 bytes, big endian), node id length (1 byte), node id, gRPC address.
    pub(crate) fn encode(&self) -> Option<Vec<u8>> {
        let id = self.from.as_str().as_bytes();
        let len = u8::try_from(id.len()).ok()?;
        let mut out = Vec::with_capacity(9 + id.len() + self.grpc_addr.len());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.push(len);
        out.extend_from_slice(id);
        out.extend_from_slice(self.grpc_addr.as_bytes());
        Some(out)
    }

    /// Parses the wire form; `None` for anything malformed (it came from the network).
    pub(crate) fn decode(data: &[u8]) -> Option<Self> {
        let (epoch, rest) = data.split_first_chunk::<8>()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len);
        if len == 0 || rest.len() < len {
            return None;
        }
        let from = std::str::from_utf8(&rest[..len]).ok()?;
        let grpc_addr = std::str::from_utf8(&rest[len..]).ok()?;
        Some(Self {
            epoch: u64::from_be_bytes(*epoch),
            from: NodeId::from(from),
            grpc_addr: grpc_addr.to_owned(),
        })
    }
}

/// The dissemination key: a newer (or re-announced equal) epoch replaces an older one in the
/// backlog, so only the latest version keeps travelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochKey(u64);

impl foca::Invalidates for EpochKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.0 >= other.0
    }
}

/// A malformed announcement from a peer.
#[derive(Debug, thiserror::Error)]
#[error("malformed ring announcement")]
pub(crate) struct BadAnnouncement;

/// State shared between the handler (owned by foca) and [`super::Membership`].
#[derive(Debug, Default)]
pub(crate) struct Announcements {
    /// Highest epoch seen or announced; older ones are not passed on.
    latest: u64,
    /// Newer announcements received since the last drain.
    received: Vec<RingAnnouncement>,
    /// Highest epoch any *peer* announced, news or not: proof of having heard the cluster.
    peer: u64,
}

/// The foca broadcast handler; foca owns it, so the state sits behind a shared lock that is
/// only ever held for a few instructions (never across I/O: this crate has none).
#[derive(Debug, Clone, Default)]
pub(crate) struct EpochHandler(pub(crate) Arc<Mutex<Announcements>>);

impl EpochHandler {
    /// Announcements received since the last call, oldest first.
    pub(crate) fn drain(&self) -> Vec<RingAnnouncement> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut state.received)
    }

    /// The highest epoch seen.
    pub(crate) fn latest(&self) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).latest
    }

    /// The highest epoch a peer announced (0 before any).
    pub(crate) fn peer(&self) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).peer
    }
}

impl<T> foca::BroadcastHandler<T> for EpochHandler {
    type Key = EpochKey;
    type Error = BadAnnouncement;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&T>,
    ) -> Result<Option<EpochKey>, BadAnnouncement> {
        let item = RingAnnouncement::decode(data).ok_or(BadAnnouncement)?;
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let local = sender.is_none();
        if !local {
            state.peer = state.peer.max(item.epoch);
        }
        // Our own (re-)announcement always goes out; a peer's only when it is news.
        if item.epoch > state.latest || (local && item.epoch == state.latest) {
            state.latest = item.epoch;
            let key = EpochKey(item.epoch);
            if !local {
                state.received.push(item);
            }
            Ok(Some(key))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use foca::BroadcastHandler;

    use super::*;

    fn ann(epoch: u64) -> RingAnnouncement {
        RingAnnouncement {
            epoch,
            from: NodeId::from("node-1"),
            grpc_addr: "127.0.0.1:50071".into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let bytes = ann(42).encode().unwrap();
        assert_eq!(RingAnnouncement::decode(&bytes), Some(ann(42)));
        for bad in [&bytes[..5], &bytes[..9], &[0u8; 9][..], &[]] {
            assert_eq!(RingAnnouncement::decode(bad), None, "{bad:?}");
        }
        let long = RingAnnouncement {
            from: NodeId::from("x".repeat(300)),
            ..ann(1)
        };
        assert!(long.encode().is_none());
    }

    #[test]
    fn only_news_is_passed_on() {
        let mut handler = EpochHandler::default();
        let peer = 7u8;
        let e = |n: u64| ann(n).encode().unwrap();
        assert!(
            BroadcastHandler::<u8>::receive_item(&mut handler, &e(3), Some(&peer))
                .unwrap()
                .is_some()
        );
        assert!(
            BroadcastHandler::<u8>::receive_item(&mut handler, &e(3), Some(&peer))
                .unwrap()
                .is_none()
        );
        assert!(
            BroadcastHandler::<u8>::receive_item(&mut handler, &e(2), Some(&peer))
                .unwrap()
                .is_none()
        );
        // A local re-announcement of the current epoch is disseminated again.
        assert!(
            BroadcastHandler::<u8>::receive_item(&mut handler, &e(3), None)
                .unwrap()
                .is_some()
        );
        assert_eq!(handler.drain(), vec![ann(3)]);
        assert!(handler.drain().is_empty());
        assert_eq!(handler.latest(), 3);
        assert_eq!(
            handler.peer(),
            3,
            "old news from a peer still proves it was heard"
        );
        assert!(BroadcastHandler::<u8>::receive_item(&mut handler, b"junk", Some(&peer)).is_err());
    }
}
