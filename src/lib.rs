//! weir: a userspace QoS bridge.
//!
//! Layers, each depending only on the ones above it:
//! - [`wire`]: bytes to a typed [`wire::FrameView`], zero-copy, never panics.
//! - [`classify`]: the rule language, flow keys, the bounded flow table, the classifier.
//! - [`sched`]: per-port class queues, token buckets, CoDel, the HTB-like scheduler; pure, with
//!   time passed in.
//! - [`capture`]: pcap / pcapng reading (with link-type conversion) and writing.
//! - [`config`]: the RON config, validated once into a [`config::Plan`].
//! - [`replay`]: the policy run on a capture in virtual time.
pub mod capture;
pub mod classify;
pub mod config;
pub mod io;
pub mod pipeline;
pub mod port;
pub mod replay;
pub mod runtime;
pub mod sched;
pub mod time;
pub mod tools;
pub mod wire;
