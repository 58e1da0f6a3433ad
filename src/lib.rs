//! weir: a userspace QoS bridge.
//!
//! Layers, each depending only on the ones above it (docs/architecture.md):
//! - [`time`], [`port`]: the shared vocabulary: nanoseconds and clocks, port sides, class ids.
//! - [`wire`]: bytes to a typed [`wire::FrameView`], zero-copy, never panics; DSCP rewrite, the
//!   vnet header and software GSO.
//! - [`classify`]: the rule language, flow keys, the bounded flow table, the classifier.
//! - [`sched`]: per-port class queues, token buckets, CoDel, the HTB-like scheduler and its
//!   counters; pure, with time passed in.
//! - [`capture`]: pcap / pcapng reading (with link-type conversion) and writing.
//! - [`config`]: the RON config, validated once into a [`config::Plan`].
//! - [`pipeline`]: the one policy path from a received frame to its departure, time passed in;
//!   both drivers below call it and nothing else of the policy.
//! - [`replay`]: the driver on a capture, in virtual time.
//! - [`io`]: devices (AF_PACKET, pnet, capture file, memory) behind one trait; the only `unsafe`.
//! - [`runtime`]: the live driver: forwarding threads, sockets, buffers and the real clock.
//! - [`tools`]: `weir send` (a paced sender) and `weir lab` (the namespace topology).
pub mod budget;
pub mod capture;
pub mod classify;
pub mod config;
pub mod control;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
pub mod pipeline;
pub mod port;
pub mod replay;
pub mod report;
pub mod runtime;
pub mod sched;
pub mod schedule;
pub mod time;
pub mod tools;
pub mod wire;
